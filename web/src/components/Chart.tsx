import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { useApp } from "../context";

const HEIGHT = 240;

export interface Series {
  label: string;
  colour: string;
  fill: string;
  values: number[];
}

// Each value drawn as a step over the interval it was measured in (ending at its point).
function steps(): uPlot.Series.PathBuilder {
  const stepped = uPlot.paths.stepped;
  if (stepped === undefined) throw new Error("uPlot without stepped paths");
  return stepped({ align: 1 });
}

// Wh per interval over time (Nairobi), one line per series, never summed into another.
export function Chart(props: {
  caption: string;
  testId: string;
  times: number[];
  series: Series[];
  range: [number, number];
}) {
  const { t } = useApp();
  const host = useRef<HTMLDivElement>(null);
  const { times, series, range } = props;
  useEffect(() => {
    const element = host.current;
    if (element === null) return;
    const data: uPlot.AlignedData = [times, ...series.map((s) => s.values)];
    const options: uPlot.Options = {
      width: Math.max(element.clientWidth, 280),
      height: HEIGHT,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Africa/Nairobi"),
      scales: {
        x: { time: true, range },
        y: { range: (_u, min, max) => [Math.min(min, 0), Math.max(max, 1)] },
      },
      series: [
        { label: t("timeLabel") },
        ...series.map((s) => ({ label: s.label, stroke: s.colour, fill: s.fill, width: 2, paths: steps() })),
      ],
      axes: [{}, { label: "Wh", size: 56 }],
    };
    const plot = new uPlot(options, data, element);
    const resized = new ResizeObserver(() => {
      plot.setSize({ width: Math.max(element.clientWidth, 280), height: HEIGHT });
    });
    resized.observe(element);
    return () => {
      resized.disconnect();
      plot.destroy();
    };
  }, [times, series, range, t]);
  return (
    <figure className="chart">
      <figcaption>{props.caption}</figcaption>
      <div ref={host} data-testid={props.testId} />
    </figure>
  );
}
