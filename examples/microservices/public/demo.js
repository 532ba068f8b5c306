const out = document.getElementById('out');
async function call(path) {
  const res = await fetch(path, { credentials: 'same-origin' });
  if (res.status === 401) {
    window.location.href = '/signin?next=/demo/';
    return;
  }
  out.textContent = `${res.status} ${path}\n\n${JSON.stringify(await res.json(), null, 2)}`;
}
document.getElementById('orders').addEventListener('click', () => call('/api/orders/'));
document.getElementById('profile').addEventListener('click', () => call('/api/profile/'));
