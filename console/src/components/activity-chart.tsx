import type { ActivityMinute } from "../api";
import { ErrorMessage } from "./notice";
import { useConsole } from "../context";
import { useLoad } from "../hooks";
import { formatDateTime } from "../format";

const MINUTES = 60;
const [WIDTH, HEIGHT, AXIS] = [600, 120, 16];

/** Proxied calls per minute over the last hour, denials stacked on top in red (inline SVG). */
export function ActivityChart() {
  const { api } = useConsole();
  const activity = useLoad(() => api.activity(MINUTES), [api], 15_000);
  const minutes = activity.data ?? [];
  const total = minutes.reduce((sum, m) => ({ calls: sum.calls + m.allowed + m.denied, denied: sum.denied + m.denied }), { calls: 0, denied: 0 });
  const peak = Math.max(1, ...minutes.map((m) => m.allowed + m.denied));
  const summary = `Last ${MINUTES} minutes: ${total.calls} proxied calls, ${total.denied} denied; at most ${peak} in a minute.`;
  return (
    <figure class="chart">
      <figcaption>
        <strong>Calls per minute</strong>
        <span class="legend">
          <span class="swatch allowed" aria-hidden="true" /> allowed <span class="swatch denied" aria-hidden="true" /> denied
        </span>
      </figcaption>
      <ErrorMessage error={activity.error} />
      <svg viewBox={`0 0 ${WIDTH} ${HEIGHT + AXIS}`} role="img" aria-label={summary} preserveAspectRatio="none">
        <title>{summary}</title>
        <line class="axis" x1={0} y1={HEIGHT} x2={WIDTH} y2={HEIGHT} />
        {minutes.map((m, i) => (
          <Bar key={m.minute} minute={m} index={i} peak={peak} />
        ))}
        <text class="tick" x={0} y={HEIGHT + AXIS - 3}>
          {MINUTES} min ago
        </text>
        <text class="tick" x={WIDTH} y={HEIGHT + AXIS - 3} text-anchor="end">
          now
        </text>
        <text class="tick" x={WIDTH} y={10} text-anchor="end">
          {peak}/min
        </text>
      </svg>
      <p class="muted">{summary}</p>
    </figure>
  );
}

function Bar({ minute, index, peak }: { minute: ActivityMinute; index: number; peak: number }) {
  const slot = WIDTH / MINUTES;
  const scale = (n: number) => (n / peak) * (HEIGHT - 14);
  const [allowed, denied] = [scale(minute.allowed), scale(minute.denied)];
  const x = index * slot + 1;
  return (
    <g>
      <title>
        {formatDateTime(minute.minute)}: {minute.allowed} allowed, {minute.denied} denied
      </title>
      {allowed > 0 && <rect class="allowed" x={x} y={HEIGHT - allowed} width={slot - 2} height={allowed} />}
      {denied > 0 && <rect class="denied" x={x} y={HEIGHT - allowed - denied} width={slot - 2} height={denied} />}
    </g>
  );
}
