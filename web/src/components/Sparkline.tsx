// A price line of the last few minutes, drawn as SVG: rising green/red by the reader's
// convention through CSS classes.

import { direction } from '../format';

export function Sparkline({ points, label }: { points: number[]; label: string }) {
  const width = 96;
  const height = 28;
  if (points.length < 2) return <span class="sparkline sparkline-empty" role="img" aria-label={label} />;
  const min = Math.min(...points);
  const max = Math.max(...points);
  const span = max - min || 1;
  const path = points
    .map((p, i) => {
      const x = (i / (points.length - 1)) * width;
      const y = height - 2 - ((p - min) / span) * (height - 4);
      return `${i ? 'L' : 'M'}${x.toFixed(1)},${y.toFixed(1)}`;
    })
    .join('');
  const trend = direction(points[points.length - 1] - points[0]);
  return (
    <svg class={`sparkline ${trend}`} viewBox={`0 0 ${width} ${height}`} width={width} height={height} role="img" aria-label={label}>
      <path d={path} fill="none" stroke="currentColor" stroke-width="1.5" />
    </svg>
  );
}
