// Motion over time: the eight regions' `abs` channels of every frame pair (the values the
// statistics summarise), one line each, with the strongest moment marked. A click (or Enter
// on the chart) reports the time under the cursor, which the page seeks the video to.
import uPlot from 'uplot'
import 'uplot/dist/uPlot.min.css'

export interface Moment {
  t: number
  region: string
}

const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#17becf']

/** The regions' `abs` channels of a series: names and, per region, its values over time. */
export function regionMotion(series: { channels: string[]; values: number[][] }): { names: string[]; columns: number[][] } {
  const idx = series.channels.map((c, i) => [c, i] as const).filter(([c]) => c.endsWith('.abs') && !c.startsWith('global.'))
  return { names: idx.map(([c]) => c.slice(0, -'.abs'.length)), columns: idx.map(([, i]) => series.values.map((row) => row[i] ?? 0)) }
}

/** The pair where the regions moved most together, and the region that moved most there. */
export function strongest(t: number[], names: string[], columns: number[][]): Moment | undefined {
  let best = -1
  let at = -1
  for (let k = 0; k < t.length; k++) {
    const sum = columns.reduce((s, c) => s + (c[k] ?? 0), 0)
    if (sum > best) [best, at] = [sum, k]
  }
  if (at < 0) return undefined
  let region = 0
  columns.forEach((c, r) => ((c[at] ?? 0) > (columns[region]![at] ?? 0) ? (region = r) : undefined))
  return { t: t[at]!, region: names[region]! }
}

export function drawChart(el: HTMLElement, t: number[], names: string[], columns: number[][], moment: Moment | undefined, onSeek: (t: number) => void): uPlot {
  const width = Math.max(280, el.clientWidth)
  const marker: uPlot.Plugin = {
    hooks: {
      draw: (u) => {
        if (!moment) return
        const x = u.valToPos(moment.t, 'x', true)
        const ctx = u.ctx
        ctx.save()
        ctx.strokeStyle = '#d00'
        ctx.lineWidth = 2 * devicePixelRatio
        ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio])
        ctx.beginPath()
        ctx.moveTo(x, u.bbox.top)
        ctx.lineTo(x, u.bbox.top + u.bbox.height)
        ctx.stroke()
        ctx.restore()
      },
    },
  }
  const u = new uPlot(
    {
      width,
      height: 260,
      plugins: [marker],
      scales: { x: { time: false } },
      axes: [{ label: 'time (s)' }, { label: 'motion (px)' }],
      series: [{ label: 't (s)', value: (_u, v) => (v == null ? '' : v.toFixed(2)) }, ...names.map((n, i) => ({ label: n, stroke: COLORS[i % COLORS.length], width: 1.5 }))],
      cursor: { drag: { x: false, y: false } },
    },
    [t, ...columns],
    el,
  )
  u.over.addEventListener('click', () => {
    const i = u.cursor.idx
    if (i != null && t[i] !== undefined) onSeek(t[i]!)
  })
  return u
}
