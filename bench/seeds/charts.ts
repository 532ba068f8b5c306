/**
 * The report's charts: vega-lite specs compiled to vega and rendered headless
 * to SVG (view.toSVG(), renderer "none": no browser, no canvas).
 */
import { parse, View } from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

export async function toSvg(spec: TopLevelSpec): Promise<string> {
  const view = new View(parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

const FONT = 'Helvetica, Arial, sans-serif';
const config = {
  font: FONT,
  background: 'white',
  view: { stroke: null },
  axis: { labelFontSize: 11, titleFontSize: 12, grid: true, gridColor: '#e6e6e6' },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 420 },
  title: { fontSize: 14, anchor: 'start' as const, subtitleFontSize: 11, subtitleColor: '#555' },
};

/** One colour per stack, the same in every chart: the seeds' stacks in greys and reds, latchkey's in blues. */
export interface Series {
  label: string;
  color: string;
}

const colorScale = (series: readonly Series[]) => ({ domain: series.map((s) => s.label), range: series.map((s) => s.color) });

/** Latency at each percentile, one line per stack, both axes readable at the tail. */
export function percentileChart(
  title: string,
  subtitle: string,
  series: readonly Series[],
  rows: { stack: string; p: number; ms: number; baseline?: boolean }[],
): TopLevelSpec {
  const ps = [...new Set(rows.map((r) => r.p))].sort((a, b) => a - b);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: title, subtitle },
    width: 560,
    height: 300,
    config,
    data: { values: rows.map((r) => ({ ...r, pct: `p${r.p}`, kind: r.baseline ? 'baseline' : 'stack' })) },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'pct', type: 'ordinal', sort: ps.map((p) => `p${p}`), title: 'percentile', axis: { labelAngle: 0 } },
      y: { field: 'ms', type: 'quantitative', scale: { type: 'log' }, title: 'latency, ms (log scale)' },
      color: { field: 'stack', type: 'nominal', scale: colorScale(series), title: null, legend: { orient: 'bottom', columns: 1 } },
      // the no-auth baselines dashed
      strokeDash: { field: 'kind', type: 'nominal', scale: { domain: ['stack', 'baseline'], range: [[1, 0], [5, 3]] }, legend: null },
      tooltip: [{ field: 'stack' }, { field: 'pct' }, { field: 'ms', format: '.2f' }],
    },
  } as TopLevelSpec;
}

/** Authenticated req/s beside server CPU µs per request split by process. */
export function throughputChart(
  subtitle: string,
  series: readonly Series[],
  rps: { stack: string; rps: number }[],
  cpu: { stack: string; process: string; us: number }[],
): TopLevelSpec {
  const order = series.map((s) => s.label);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: 'Authenticated requests: throughput and server CPU per request', subtitle },
    config,
    hconcat: [
      {
        width: 300,
        height: { step: 26 },
        data: { values: rps },
        layer: [
          {
            mark: 'bar',
            encoding: {
              y: { field: 'stack', type: 'nominal', sort: order, title: null, axis: { labelLimit: 400 } },
              x: { field: 'rps', type: 'quantitative', title: 'requests per second (higher is better)' },
              color: { field: 'stack', type: 'nominal', scale: colorScale(series), legend: null },
            },
          },
          {
            mark: { type: 'text', align: 'left', dx: 4, fontSize: 11 },
            encoding: {
              y: { field: 'stack', type: 'nominal', sort: order },
              x: { field: 'rps', type: 'quantitative' },
              text: { field: 'rps', type: 'quantitative', format: ',.0f' },
            },
          },
        ],
      },
      {
        width: 260,
        height: { step: 26 },
        data: { values: cpu },
        layer: [
          {
            mark: 'bar',
            encoding: {
              y: { field: 'stack', type: 'nominal', sort: order, title: null, axis: null },
              x: { field: 'us', type: 'quantitative', stack: 'zero', title: 'server CPU µs per request (lower is better)' },
              color: { field: 'process', type: 'nominal', title: 'process', scale: { scheme: 'set2' }, legend: { orient: 'bottom', columns: 2 } },
              tooltip: [{ field: 'stack' }, { field: 'process' }, { field: 'us', format: '.1f' }],
            },
          },
          {
            transform: [{ aggregate: [{ op: 'sum', field: 'us', as: 'total' }], groupby: ['stack'] }],
            mark: { type: 'text', align: 'left', dx: 4, fontSize: 11 },
            encoding: {
              y: { field: 'stack', type: 'nominal', sort: order },
              x: { field: 'total', type: 'quantitative' },
              text: { field: 'total', type: 'quantitative', format: ',.0f' },
            },
          },
        ],
      },
    ],
    resolve: { scale: { color: 'independent' } },
  } as TopLevelSpec;
}

/** A horizontal bar per row with its value written at the end. */
export function barChart(opts: {
  title: string;
  subtitle: string;
  xTitle: string;
  series: readonly Series[];
  rows: { stack: string; value: number; text: string }[];
  rule?: { value: number; text: string };
}): TopLevelSpec {
  const order = opts.rows.map((r) => r.stack);
  const layers: unknown[] = [
    {
      mark: 'bar',
      encoding: {
        y: { field: 'stack', type: 'nominal', sort: order, title: null, axis: { labelLimit: 400 } },
        x: { field: 'value', type: 'quantitative', title: opts.xTitle },
        color: { field: 'stack', type: 'nominal', scale: colorScale(opts.series), legend: null },
      },
    },
    {
      mark: { type: 'text', align: 'left', dx: 4, fontSize: 11 },
      encoding: { y: { field: 'stack', type: 'nominal', sort: order }, x: { field: 'value', type: 'quantitative' }, text: { field: 'text' } },
    },
  ];
  if (opts.rule) {
    layers.push(
      { data: { values: [{ v: opts.rule.value }] }, mark: { type: 'rule', strokeDash: [4, 3], color: '#333' }, encoding: { x: { field: 'v', type: 'quantitative' } } },
      {
        data: { values: [{ v: opts.rule.value, t: opts.rule.text }] },
        mark: { type: 'text', align: 'left', dx: 4, dy: -6, fontSize: 11, color: '#333' },
        encoding: { x: { field: 'v', type: 'quantitative' }, y: { value: 0 }, text: { field: 't' } },
      },
    );
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: opts.title, subtitle: opts.subtitle },
    width: 420,
    height: { step: 26 },
    config,
    data: { values: opts.rows },
    layer: layers,
  } as TopLevelSpec;
}
