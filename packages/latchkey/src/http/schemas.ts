import { Type } from '@sinclair/typebox';

export const Credentials = Type.Object(
  {
    email: Type.String({ minLength: 1, maxLength: 320 }),
    password: Type.String({ minLength: 1, maxLength: 4096 }),
  },
  { additionalProperties: false },
);

export const PasswordChange = Type.Object(
  {
    currentPassword: Type.String({ minLength: 1, maxLength: 4096 }),
    newPassword: Type.String({ minLength: 1, maxLength: 4096 }),
  },
  { additionalProperties: false },
);

export const HandleParams = Type.Object({ handle: Type.String({ minLength: 1, maxLength: 64 }) });
export const UserParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });
