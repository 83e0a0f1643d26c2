// Motion over time: the eight regions' `abs` channels of every frame pair (the values the
// statistics summarise), one line each, with the strongest moment marked: the highest point
// of any line, so the mark is where the chart peaks. A click (or Enter
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

/** The highest point of any region's line: its time and region (the first, on ties). */
export function strongest(t: number[], names: string[], columns: number[][]): Moment | undefined {
  let best = Number.NEGATIVE_INFINITY
  let at: Moment | undefined
  columns.forEach((c, r) => {
    for (let k = 0; k < t.length; k++) {
      const v = c[k] ?? Number.NEGATIVE_INFINITY
      if (v > best) [best, at] = [v, { t: t[k]!, region: names[r]! }]
    }
  })
  return at
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
