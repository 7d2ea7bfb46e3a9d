// How numbers, times and alerts read: exact decimal prices grouped by the reader's locale
// (never through binary floating point), signed percentages, and an alert as one sentence.

import { signal } from '@preact/signals';
import { get, type Alert, type Average, type Instrument, type Rule } from './api';
import { t } from './i18n';
import { language, locale } from './prefs';

/** Names of instruments met so far, so an alert can say "삼성전자" rather than "005930". */
const names = new Map<string, { ko: string; en: string }>();
/** Bumped when names are learnt, so what shows a bare symbol meanwhile shows the name. */
const learnt = signal(0);

export function remember(instruments: Instrument[]) {
  for (const i of instruments) names.set(i.id, { ko: i.koreanName, en: i.englishName });
  if (instruments.length) learnt.value += 1;
}

const asked = new Set<string>();
/** Looks up the names of instruments not met yet (each asked once). */
export async function learnNames(ids: string[]) {
  const missing = [...new Set(ids)].filter((id) => !names.has(id) && !asked.has(id));
  missing.forEach((id) => asked.add(id));
  const found = await Promise.all(
    missing.map((id) => get<Instrument>(`/api/v1/instruments/${encodeURIComponent(id)}`).catch(() => undefined)),
  );
  remember(found.filter((i): i is Instrument => Boolean(i)));
}

export function nameOf(instrument: Instrument | string): string {
  const id = typeof instrument === 'string' ? instrument : instrument.id;
  void learnt.value;
  const known = typeof instrument === 'string' ? names.get(id) : { ko: instrument.koreanName, en: instrument.englishName };
  const symbol = id.split(':').pop() ?? id;
  if (!known) return symbol;
  return (language.value === 'ko' ? known.ko || known.en : known.en || known.ko) || symbol;
}

/** `12345678.5` -> `12,345,678.5`, digit for digit as the server sent it. */
export function formatPrice(price: string | null | undefined): string {
  if (price == null || price === '') return '–';
  const negative = price.startsWith('-');
  const [whole, fraction] = price.replace(/^[-+]/, '').split('.');
  const separator = new Intl.NumberFormat(locale.value).format(1000).charAt(1) || ',';
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, separator);
  return (negative ? '-' : '') + grouped + (fraction ? '.' + fraction : '');
}

export function currencyMark(currency: string): string {
  return currency === 'KRW' ? (language.value === 'ko' ? '원' : 'KRW') : currency === 'USD' ? 'USD' : currency;
}

/** `+1.23%`, `-0.50%`, `0.00%`. */
export function formatPercent(percent: number | string | null | undefined): string {
  if (percent == null || percent === '') return '–';
  const value = Number(percent);
  if (!Number.isFinite(value)) return '–';
  const text = new Intl.NumberFormat(locale.value, {
    minimumFractionDigits: 2,
    maximumFractionDigits: 2,
    signDisplay: 'exceptZero',
  }).format(value);
  return `${text}%`;
}

/** `up`, `down` or `flat`: the CSS class that colours a change by the reader's convention. */
export function direction(percent: number | string | null | undefined): 'up' | 'down' | 'flat' {
  const value = Number(percent);
  if (percent == null || !Number.isFinite(value) || value === 0) return 'flat';
  return value > 0 ? 'up' : 'down';
}

export function formatTime(iso: string | number | null | undefined): string {
  if (iso == null) return '–';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '–';
  const sameDay = date.toDateString() === new Date().toDateString();
  return new Intl.DateTimeFormat(locale.value, {
    ...(sameDay ? {} : { year: 'numeric', month: 'short', day: 'numeric' }),
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  }).format(date);
}

/** An alert in one sentence: its rule's message, or "삼성전자 71,900 도달 (71,900 이상 알림)". */
export function describeAlert(alert: Alert): { title: string; body: string } {
  const name = nameOf(alert.instrument);
  if (alert.message) return { title: name, body: alert.message };
  const vars = {
    name,
    price: formatPrice(alert.price),
    level: formatPrice(alert.level),
    percent: alert.percent ?? '',
    condition: t(`cond.${alert.condition}`),
  };
  switch (alert.condition) {
    case 'ABOVE':
    case 'BELOW':
    case 'CHANGE_UP':
    case 'CHANGE_DOWN':
      return { title: name, body: t(`alert.${alert.condition}`, vars) };
    default:
      return { title: name, body: t('alert.other', vars) };
  }
}

const average = (a: Average | undefined) => (a ? `${a.average}${a.bars}` : '');

/** A rule in a few words, for buttons' labels and chart lines: "≥ 71,900", "RSI14 1h ≥ 70". */
export function describeRule(rule: Rule): string {
  const per = rule.interval ? ` ${rule.interval}` : '';
  const move = rule.percent ? `${rule.percent}%` : formatPrice(rule.amount);
  switch (rule.condition) {
    case 'ABOVE':
      return `≥ ${formatPrice(rule.level)}`;
    case 'BELOW':
      return `≤ ${formatPrice(rule.level)}`;
    case 'CHANGE_UP':
      return `+${rule.percent}%`;
    case 'CHANGE_DOWN':
      return `−${rule.percent}%`;
    case 'CROSS_UP':
      return `↗ ${formatPrice(rule.level)}`;
    case 'CROSS_DOWN':
      return `↘ ${formatPrice(rule.level)}`;
    case 'CROSSING':
      return `↕ ${formatPrice(rule.level)}`;
    case 'CHANNEL_ENTER':
      return `∈ [${formatPrice(rule.low)}, ${formatPrice(rule.high)}]`;
    case 'CHANNEL_EXIT':
      return `∉ [${formatPrice(rule.low)}, ${formatPrice(rule.high)}]`;
    case 'MOVE_UP':
      return `▲ ${move} / ${rule.windowSeconds}s`;
    case 'MOVE_DOWN':
      return `▼ ${move} / ${rule.windowSeconds}s`;
    case 'VOLUME_SPIKE':
      return `Vol × ${rule.factor} (${rule.bars}${per})`;
    case 'DAY_VOLUME':
      return `Vol ≥ ${formatPrice(rule.volume)}`;
    case 'MA_CROSS_UP':
      return `↗ ${rule.average ?? 'SMA'}${rule.bars}${per}`;
    case 'MA_CROSS_DOWN':
      return `↘ ${rule.average ?? 'SMA'}${rule.bars}${per}`;
    case 'RSI_ABOVE':
      return `RSI${rule.bars}${per} ≥ ${rule.level}`;
    case 'RSI_BELOW':
      return `RSI${rule.bars}${per} ≤ ${rule.level}`;
    case 'GOLDEN_CROSS':
      return `${average(rule.fast)} ↗ ${average(rule.slow)}${per}`;
    case 'DEAD_CROSS':
      return `${average(rule.fast)} ↘ ${average(rule.slow)}${per}`;
  }
}
