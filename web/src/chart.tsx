// The candlestick chart of the instrument page, drawn by TradingView's lightweight-charts. It
// loads with this page only (its own bundle chunk), shows the person's rule levels as lines,
// grows the newest candle from live prices, and turns a click into a level (or a rule, when the
// click is on its line).

import { effect } from '@preact/signals';
import {
  CandlestickSeries,
  ColorType,
  CrosshairMode,
  LineStyle,
  createChart,
  type CandlestickData,
  type IChartApi,
  type IPriceLine,
  type ISeriesApi,
  type MouseEventParams,
  type Time,
  type UTCTimestamp,
} from 'lightweight-charts';
import { useEffect, useRef, useState } from 'preact/hooks';
import { candleSeries, enc, get, type Candle, type CandleSeries, type Instrument, type Rule } from './api';
import { describeRule, formatPrice } from './format';
import { t } from './i18n';
import { colourConvention, dark, locale } from './prefs';
import { quoteOf } from './quotes';
import { decimalsOf, priceUnit } from './ticks';

export type Interval = '1m' | '5m' | '15m' | '1h' | '1d';

const SECONDS: Record<Interval, number> = { '1m': 60, '5m': 300, '15m': 900, '1h': 3_600, '1d': 86_400 };
/**
 * Bars asked for per interval: a screenful or more, within what the exchanges' history gives in a
 * few seconds (minute candles for up to ten days back, daily candles for a year).
 */
const BARS: Record<Interval, number> = { '1m': 500, '5m': 500, '15m': 500, '1h': 240, '1d': 365 };
/** A click this close to a rule's line (in pixels) is a click on the rule. */
const LINE_HIT_PX = 6;

/** While the exchange backfill runs, the candles are asked for again this often. */
const BACKFILL_POLL_MS = 3_000;

function palette() {
  const styles = getComputedStyle(document.documentElement);
  const read = (name: string) => styles.getPropertyValue(name).trim();
  return { up: read('--up'), down: read('--down'), text: read('--muted'), grid: read('--line'), accent: read('--accent') };
}

/**
 * The price a rule watches, for its line: its level, or the one its percentage of the previous
 * close gives today; none for conditions that watch no one price (moves, volume, indicators).
 */
export function ruleLevel(rule: Rule, prevClose: number | undefined): number | undefined {
  switch (rule.condition) {
    case 'ABOVE':
    case 'BELOW':
    case 'CROSS_UP':
    case 'CROSS_DOWN':
    case 'CROSSING':
      return rule.level ? Number(rule.level) : undefined;
    case 'CHANGE_UP':
    case 'CHANGE_DOWN': {
      if (!rule.percent || !prevClose) return undefined;
      const factor = Number(rule.percent) / 100;
      return rule.condition === 'CHANGE_UP' ? prevClose * (1 + factor) : prevClose * (1 - factor);
    }
    default:
      return undefined;
  }
}

export default function Chart({
  instrument,
  interval,
  rules,
  onLevel,
  onRule,
}: {
  instrument: Instrument;
  interval: Interval;
  rules: Rule[];
  onLevel: (price: number) => void;
  onRule: (rule: Rule) => void;
}) {
  const container = useRef<HTMLDivElement>(null);
  const chartRef = useRef<IChartApi | undefined>(undefined);
  const seriesRef = useRef<ISeriesApi<'Candlestick'> | undefined>(undefined);
  const lines = useRef<{ rule: Rule; line: IPriceLine; level: number }[]>([]);
  const last = useRef<CandlestickData<Time> | undefined>(undefined);
  const handlers = useRef({ onLevel, onRule });
  handlers.current = { onLevel, onRule };
  const [empty, setEmpty] = useState(false);
  const [simulatedHistory, setSimulatedHistory] = useState(false);
  const [backfilling, setBackfilling] = useState(false);
  const reference = Number(instrument.quote?.price ?? 0) || 1;
  const unit = priceUnit(instrument.market, reference);

  useEffect(() => {
    const element = container.current;
    if (!element) return;
    const chart = createChart(element, {
      autoSize: true,
      crosshair: { mode: CrosshairMode.Normal },
      timeScale: { timeVisible: true, secondsVisible: false },
      // The library's logo needs an inline <style>, which the app's Content-Security-Policy
      // refuses; the attribution its licence asks for is the link under the chart instead.
      layout: { attributionLogo: false },
      localization: {
        locale: locale.value,
        priceFormatter: (p: number) => formatPrice(p.toFixed(decimalsOf(unit))),
        timeFormatter: (time: Time) =>
          new Intl.DateTimeFormat(locale.value, { dateStyle: 'medium', timeStyle: 'short' }).format(new Date((time as number) * 1000)),
      },
    });
    const series = chart.addSeries(CandlestickSeries, {
      priceFormat: { type: 'price', precision: decimalsOf(unit), minMove: unit },
    });
    chart.subscribeClick((param: MouseEventParams<Time>) => {
      if (!param.point) return;
      const y = param.point.y;
      const hit = lines.current.find(({ level }) => {
        const at = series.priceToCoordinate(level);
        return at !== null && Math.abs(at - y) <= LINE_HIT_PX;
      });
      if (hit) return handlers.current.onRule(hit.rule);
      const price = series.coordinateToPrice(y);
      if (price !== null && price > 0) handlers.current.onLevel(price);
    });
    chartRef.current = chart;
    seriesRef.current = series;
    // Colours follow the theme and the reader's convention for rises and falls.
    const stopColours = effect(() => {
      void dark.value;
      void colourConvention.value;
      const c = palette();
      chart.applyOptions({
        layout: { background: { type: ColorType.Solid, color: 'transparent' }, textColor: c.text },
        grid: { vertLines: { color: c.grid }, horzLines: { color: c.grid } },
      });
      series.applyOptions({
        upColor: c.up,
        downColor: c.down,
        borderUpColor: c.up,
        borderDownColor: c.down,
        wickUpColor: c.up,
        wickDownColor: c.down,
      });
      for (const { line } of lines.current) line.applyOptions({ color: c.accent });
    });
    return () => {
      stopColours();
      chart.remove();
      chartRef.current = undefined;
      seriesRef.current = undefined;
      lines.current = [];
    };
  }, [instrument.id]);

  // History for the interval, then live growth of the newest candle.
  useEffect(() => {
    const series = seriesRef.current;
    if (!series) return;
    let stopped = false;
    last.current = undefined;
    series.setData([]);
    let poll: ReturnType<typeof setTimeout> | undefined;
    const load = async () => {
      try {
        const series = candleSeries(
          await get<Candle[] | CandleSeries>(
            `/api/v1/instruments/${enc(instrument.id)}/candles?interval=${interval}&limit=${BARS[interval]}`,
          ),
        );
        if (stopped) return;
        const data = series.candles
          .map((c) => ({
            time: (Date.parse(c.time ?? c.minute ?? '') / 1000) as UTCTimestamp,
            open: Number(c.open),
            high: Number(c.high),
            low: Number(c.low),
            close: Number(c.close),
          }))
          .filter((c) => Number.isFinite(c.time))
          .sort((a, b) => a.time - b.time);
        // Live prices may have grown a newer bar than the history holds.
        const live = last.current;
        if (live && data.length && (live.time as number) > data[data.length - 1].time) data.push(live as (typeof data)[number]);
        seriesRef.current?.setData(data);
        last.current = data[data.length - 1] ?? live;
        setEmpty(data.length === 0);
        setSimulatedHistory(Boolean(series.simulated) || series.candles.some((c) => c.simulated));
        chartRef.current?.timeScale().scrollToRealTime();
        setBackfilling(series.complete === false);
        if (series.complete === false) poll = setTimeout(load, BACKFILL_POLL_MS);
      } catch {
        if (!stopped) {
          setEmpty(true);
          setBackfilling(false);
        }
      }
    };
    void load();
    const stopLive = effect(() => {
      const quote = quoteOf(instrument.id).value;
      if (!quote || !seriesRef.current) return;
      const price = Number(quote.price);
      const bucket = SECONDS[interval];
      const time = (Math.floor(quote.at / 1000 / bucket) * bucket) as UTCTimestamp;
      const previous = last.current;
      if (previous && (previous.time as number) > time) return;
      const bar =
        previous && previous.time === time
          ? { ...previous, high: Math.max(previous.high, price), low: Math.min(previous.low, price), close: price }
          : { time, open: price, high: price, low: price, close: price };
      seriesRef.current.update(bar);
      last.current = bar;
      setEmpty(false);
    });
    return () => {
      stopped = true;
      clearTimeout(poll);
      stopLive();
    };
  }, [instrument.id, interval]);

  // The person's rules as lines.
  useEffect(() => {
    const series = seriesRef.current;
    if (!series) return;
    for (const { line } of lines.current) series.removePriceLine(line);
    const prevClose = Number(instrument.quote?.prevClose) || undefined;
    const accent = palette().accent;
    lines.current = rules
      .filter((r) => r.state === 'armed' || r.state === 'cooling')
      .flatMap((rule) => {
        const level = ruleLevel(rule, prevClose);
        if (level === undefined) return [];
        const line = series.createPriceLine({
          price: level,
          color: accent,
          lineWidth: 2,
          lineStyle: LineStyle.Dashed,
          axisLabelVisible: true,
          title: describeRule(rule),
        });
        return [{ rule, line, level }];
      });
  }, [rules, instrument.quote?.prevClose]);

  return (
    <div class="chart-wrap">
      <div
        class="chart"
        ref={container}
        role="img"
        aria-label={t('chart.label', { name: instrument.koreanName || instrument.englishName, interval: t(`interval.${interval}`) })}
        data-chart
      />
      {empty && !backfilling && <p class="chart-empty muted">{t('chart.empty')}</p>}
      <p class="chart-backfill muted" role="status">
        {backfilling ? t('chart.backfilling') : ''}
      </p>
      {simulatedHistory && <p class="tag tag-simulated chart-tag">{t('chart.simulatedHistory')}</p>}
      <p class="attribution">
        {t('chart.attribution')}{' '}
        <a href="https://www.tradingview.com/" target="_blank" rel="noopener noreferrer">
          TradingView Lightweight Charts™
        </a>
      </p>
    </div>
  );
}
