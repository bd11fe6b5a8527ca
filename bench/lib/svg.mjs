// A small SVG line chart for bench/RESULTS.md: latency percentiles (ms) against the offered rate.
// No dependency: plain SVG 1.1 text, readable on GitHub.

const escape = (text) => String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** 1, 2, 5 × 10^n steps: about `count` ticks from 0 to at least `max`. */
function niceTicks(max, count = 5) {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? 10 * magnitude;
  const ticks = [];
  for (let v = 0; v < max + step * 0.999; v += step) ticks.push(Math.round(v * 1e6) / 1e6);
  return ticks;
}

const formatRate = (r) => (Number.isInteger(r) ? String(r) : String(Number(r.toFixed(2))));
const formatMs = (ms) => (ms >= 1000 ? `${Number((ms / 1000).toFixed(2))} s` : `${Math.round(ms)} ms`);

/**
 * `rows`: one per offered rate, `{ offered, p50, p90, p99 }` (uploads/s, latencies in ms; a missing
 * or non-finite value leaves a gap). Options: `title`; `targets`, horizontal dashed lines such as
 * `[{ label: 'p50 target', ms: 500 }]`; `width`, `height`. The x axis is logarithmic (base 2) when
 * the rates span a factor of 4 or more (0.5, 1, 2, 4 come out evenly spaced), linear otherwise.
 * Returns the SVG document as a string.
 */
export function latencyChart(rows, options = {}) {
  const width = options.width ?? 640;
  const height = options.height ?? 380;
  const title = options.title ?? 'Presign start → ready, by offered rate';
  const targets = options.targets ?? [];
  const series = [
    { key: 'p50', color: '#1f77b4' },
    { key: 'p90', color: '#ff7f0e' },
    { key: 'p99', color: '#d62728' },
  ];
  const points = [...rows].filter((r) => Number.isFinite(r.offered) && r.offered > 0).sort((a, b) => a.offered - b.offered);
  const margin = { top: 40, right: 110, bottom: 50, left: 70 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;

  const rates = points.map((r) => r.offered);
  const minRate = Math.min(...rates, Infinity);
  const maxRate = Math.max(...rates, -Infinity);
  const logX = rates.length > 1 && maxRate / minRate >= 4;
  let x;
  let xTicks;
  if (rates.length === 0) {
    x = () => margin.left;
    xTicks = [];
  } else if (logX) {
    const lo = Math.log2(minRate);
    const hi = Math.log2(maxRate);
    x = (r) => margin.left + ((Math.log2(r) - lo) / (hi - lo)) * plotW;
    xTicks = rates;
  } else {
    const hi = niceTicks(maxRate).at(-1);
    x = (r) => margin.left + (r / hi) * plotW;
    xTicks = niceTicks(maxRate);
  }
  const values = points.flatMap((r) => series.map((s) => r[s.key])).concat(targets.map((t) => t.ms)).filter(Number.isFinite);
  const yTicks = niceTicks(Math.max(...values, 1));
  const yMax = yTicks.at(-1);
  const y = (ms) => margin.top + plotH - (ms / yMax) * plotH;

  const out = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text x="${width / 2}" y="22" text-anchor="middle" font-size="14" font-weight="bold">${escape(title)}</text>`);
  // Grid and y axis.
  for (const t of yTicks) {
    out.push(`<line x1="${margin.left}" x2="${margin.left + plotW}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${margin.left - 8}" y="${(y(t) + 4).toFixed(1)}" text-anchor="end">${escape(formatMs(t))}</text>`);
  }
  // x axis.
  for (const r of xTicks) {
    const px = x(r).toFixed(1);
    out.push(`<line x1="${px}" x2="${px}" y1="${margin.top + plotH}" y2="${margin.top + plotH + 5}" stroke="#333"/>`);
    out.push(`<text x="${px}" y="${margin.top + plotH + 18}" text-anchor="middle">${escape(formatRate(r))}</text>`);
  }
  out.push(`<line x1="${margin.left}" x2="${margin.left + plotW}" y1="${margin.top + plotH}" y2="${margin.top + plotH}" stroke="#333"/>`);
  out.push(`<line x1="${margin.left}" x2="${margin.left}" y1="${margin.top}" y2="${margin.top + plotH}" stroke="#333"/>`);
  out.push(`<text x="${margin.left + plotW / 2}" y="${height - 12}" text-anchor="middle">offered uploads/s${logX ? ' (log scale)' : ''}</text>`);
  out.push(`<text transform="translate(18 ${margin.top + plotH / 2}) rotate(-90)" text-anchor="middle">latency</text>`);
  // Targets.
  for (const t of targets) {
    if (!Number.isFinite(t.ms)) continue;
    const py = y(t.ms).toFixed(1);
    out.push(`<line x1="${margin.left}" x2="${margin.left + plotW}" y1="${py}" y2="${py}" stroke="#777" stroke-dasharray="6 4"/>`);
    out.push(`<text x="${margin.left + plotW + 6}" y="${(Number(py) + 4).toFixed(1)}" fill="#555">${escape(t.label)}</text>`);
  }
  // Series: a polyline per unbroken run of values, a dot per point.
  series.forEach((s, i) => {
    let run = [];
    const flush = () => {
      if (run.length > 1) out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${run.join(' ')}"/>`);
      run = [];
    };
    for (const r of points) {
      const v = r[s.key];
      if (!Number.isFinite(v)) {
        flush();
        continue;
      }
      const px = x(r.offered).toFixed(1);
      const py = y(v).toFixed(1);
      run.push(`${px},${py}`);
      out.push(`<circle cx="${px}" cy="${py}" r="3" fill="${s.color}"><title>${escape(`${s.key} at ${formatRate(r.offered)}/s: ${formatMs(v)}`)}</title></circle>`);
    }
    flush();
    // Legend.
    const ly = margin.top + 10 + i * 18;
    const lx = margin.left + plotW + 12;
    out.push(`<line x1="${lx}" x2="${lx + 20}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"/>`);
    out.push(`<text x="${lx + 26}" y="${ly + 4}">${s.key}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
