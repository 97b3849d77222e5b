// Line charts and sparklines drawn as SVG: a few hundred lines instead of a charting dependency.

import { fmtNum, h, replace, s } from './dom.js';

export const PALETTE = ['#2563eb', '#d97706', '#059669', '#7c3aed', '#db2777', '#0891b2', '#65a30d', '#dc2626'];

const WIDTH = 480;
const HEIGHT = 190;
const MARGIN = { left: 52, right: 12, top: 10, bottom: 24 };
const MAX_POINTS = 800; // beyond this a series is thinned evenly (the last point always kept)

/** Round tick values covering [lo, hi], about `count` of them. */
export function niceTicks(lo, hi, count = 4) {
  const span = hi - lo;
  const raw = span / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((candidate) => span / candidate <= count) ?? raw;
  const ticks = [];
  for (let value = Math.ceil(lo / step) * step; value <= hi + step * 1e-9; value += step) {
    ticks.push(Number(value.toPrecision(12)));
  }
  return ticks;
}

function thin(points) {
  if (points.length <= MAX_POINTS) return points;
  const stride = points.length / MAX_POINTS;
  const kept = Array.from({ length: MAX_POINTS - 1 }, (_, i) => points[Math.floor(i * stride)]);
  kept.push(points[points.length - 1]);
  return kept;
}

function extent(values, padFraction) {
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (lo === hi) {
    const pad = Math.abs(lo) * 0.1 || 1;
    return [lo - pad, hi + pad];
  }
  const pad = (hi - lo) * padFraction;
  return [lo - pad, hi + pad];
}

function scales(series, band) {
  const xs = [];
  const ys = [];
  for (const { points } of series) {
    for (const [x, y] of points) {
      xs.push(x);
      ys.push(y);
    }
  }
  for (const [x, lo, hi] of band?.points || []) {
    xs.push(x);
    ys.push(lo, hi);
  }
  const [x0, x1] = xs.length > 1 && Math.min(...xs) !== Math.max(...xs) ? [Math.min(...xs), Math.max(...xs)] : extent(xs, 0);
  const [y0, y1] = extent(ys, 0.05);
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  return {
    x: (v) => MARGIN.left + ((v - x0) / (x1 - x0)) * plotW,
    y: (v) => MARGIN.top + (1 - (v - y0) / (y1 - y0)) * plotH,
    xDomain: [x0, x1],
    yDomain: [y0, y1],
  };
}

const pathOf = (points, sc) => points.map(([x, y], i) => `${i ? 'L' : 'M'}${sc.x(x).toFixed(1)},${sc.y(y).toFixed(1)}`).join('');

function bandPath(points, sc) {
  const upper = points.map(([x, , hi]) => [x, hi]);
  const lower = points.map(([x, lo]) => [x, lo]).reverse();
  return `${pathOf(upper, sc)}${pathOf(lower, sc).replace(/^M/, 'L')}Z`;
}

/** Labels with just enough digits to tell neighbouring ticks apart. */
export function tickFormat(ticks) {
  const step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) : Math.abs(ticks[0]) || 1;
  const largest = Math.max(...ticks.map(Math.abs));
  const stepPower = Math.floor(Math.log10(step));
  if (largest >= 1e5 || (largest > 0 && largest < 1e-2)) {
    const digits = Math.max(0, Math.floor(Math.log10(largest)) - stepPower);
    return (v) => (v === 0 ? '0' : v.toExponential(digits).replace('e+', 'e'));
  }
  return (v) => v.toFixed(Math.max(0, -stepPower));
}

function axes(sc, format) {
  const group = s('g', { class: 'axes' });
  const yTicks = niceTicks(...sc.yDomain);
  format ??= tickFormat(yTicks);
  for (const tick of yTicks) {
    const y = sc.y(tick).toFixed(1);
    group.append(
      s('line', { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y, y2: y, class: 'grid' }),
      s('text', { x: MARGIN.left - 6, y, class: 'tick y' }, format(tick)),
    );
  }
  const xTicks = niceTicks(...sc.xDomain, 5).filter((t) => Number.isInteger(t));
  for (const tick of xTicks) {
    group.append(s('text', { x: sc.x(tick).toFixed(1), y: HEIGHT - 6, class: 'tick x' }, String(tick)));
  }
  return group;
}

/** Values of every series at the step nearest to `x` (in data units). */
function valuesNear(series, x) {
  const rows = [];
  let step;
  for (const { name, color, points } of series) {
    let best;
    for (const point of points) if (!best || Math.abs(point[0] - x) < Math.abs(best[0] - x)) best = point;
    if (best) {
      step ??= best[0];
      rows.push({ name, color, value: best[1], step: best[0] });
    }
  }
  return { step, rows: rows.filter((row) => row.step === step) };
}

function hoverLayer(svg, tooltip, series, sc) {
  const cursor = s('line', { class: 'cursor', y1: MARGIN.top, y2: HEIGHT - MARGIN.bottom, visibility: 'hidden' });
  const area = s('rect', {
    x: MARGIN.left,
    y: MARGIN.top,
    width: WIDTH - MARGIN.left - MARGIN.right,
    height: HEIGHT - MARGIN.top - MARGIN.bottom,
    class: 'hover-area',
  });
  area.addEventListener('mousemove', (event) => {
    const box = svg.getBoundingClientRect();
    const px = ((event.clientX - box.left) / box.width) * WIDTH;
    const [x0, x1] = sc.xDomain;
    const { step, rows } = valuesNear(series, x0 + ((px - MARGIN.left) / (WIDTH - MARGIN.left - MARGIN.right)) * (x1 - x0));
    if (step === undefined) return;
    cursor.setAttribute('x1', sc.x(step));
    cursor.setAttribute('x2', sc.x(step));
    cursor.setAttribute('visibility', 'visible');
    replace(tooltip, h('b', {}, `step ${step}`), rows.map((r) => h('div', {}, h('i', { style: `background:${r.color}` }), `${r.name}: ${fmtNum(r.value)}`)));
    tooltip.hidden = false;
  });
  area.addEventListener('mouseleave', () => {
    cursor.setAttribute('visibility', 'hidden');
    tooltip.hidden = true;
  });
  return [cursor, area];
}

/**
 * A chart card. update({series: [{name, points: [[step, value]]}], band: {points: [[step, lo, hi]]},
 * markers: [{x, label}]}) redraws it. The svg's data-points is the first series' point count.
 */
export function lineChart({ title, format, id, emptyText = 'no data yet' }) {
  const svg = s('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: 'chart-svg', role: 'img', 'aria-label': title });
  const legend = h('div', { class: 'legend' });
  const tooltip = h('div', { class: 'tooltip', hidden: true });
  const el = h('figure', { class: 'chart', dataset: { chart: id || title } }, h('figcaption', {}, title), legend, h('div', { class: 'plot' }, svg, tooltip));

  function update({ series = [], band, markers = [] } = {}) {
    const drawn = series
      .filter((item) => item.points.length)
      .map((item, i) => ({ ...item, color: item.color || PALETTE[i % PALETTE.length], points: thin(item.points) }));
    svg.dataset.points = String(drawn[0]?.points.length ?? 0);
    svg.replaceChildren();
    replace(legend, drawn.length > 1 || band ? drawn.map((item) => h('span', {}, h('i', { style: `background:${item.color}` }), item.name)) : []);
    if (band?.points.length) legend.append(h('span', {}, h('i', { class: 'band-swatch' }), band.name || '± std'));
    if (!drawn.length) {
      svg.append(s('text', { x: WIDTH / 2, y: HEIGHT / 2, class: 'empty' }, emptyText));
      return;
    }
    const bandPoints = band?.points.length ? thin(band.points) : null;
    const sc = scales(drawn, bandPoints && { points: bandPoints });
    svg.append(axes(sc, format));
    if (bandPoints) svg.append(s('path', { d: bandPath(bandPoints, sc), class: 'band', fill: drawn[0].color }));
    for (const marker of markers) {
      const x = sc.x(marker.x).toFixed(1);
      svg.append(s('line', { x1: x, x2: x, y1: MARGIN.top, y2: HEIGHT - MARGIN.bottom, class: 'marker' }, s('title', {}, marker.label)));
    }
    for (const item of drawn) {
      svg.append(s('path', { d: pathOf(item.points, sc), class: 'line', stroke: item.color, dataset: { series: item.name } }));
      if (item.points.length === 1) {
        const [x, y] = item.points[0];
        svg.append(s('circle', { cx: sc.x(x), cy: sc.y(y), r: 3, fill: item.color }));
      }
    }
    svg.append(...hoverLayer(svg, tooltip, drawn, sc));
  }

  update();
  return { el, update };
}

/** A small inline trend line, e.g. a job's reward/mean in the jobs list. */
export function sparkline(values, { width = 120, height = 28 } = {}) {
  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, width, height, class: 'sparkline', dataset: { points: String(values.length) } });
  if (values.length < 2) {
    if (values.length === 1) svg.append(s('circle', { cx: width / 2, cy: height / 2, r: 2 }));
    return svg;
  }
  const sample = thin(values.map((v, i) => [i, v]));
  const [lo, hi] = extent(sample.map(([, v]) => v), 0.08);
  const last = sample[sample.length - 1][0];
  const points = sample.map(([i, v]) => `${((i / last) * (width - 2) + 1).toFixed(1)},${((1 - (v - lo) / (hi - lo)) * (height - 2) + 1).toFixed(1)}`);
  svg.append(s('polyline', { points: points.join(' ') }));
  return svg;
}
