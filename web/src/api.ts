// The HTTP client of the app: same-origin JSON requests carrying the session cookie, with the
// CSRF token echoed on every state-changing request, and errors as the server words them.

export interface Quote {
  instrument: string;
  price: string;
  prevClose?: string | null;
  change?: string | null;
  changePercent?: string | null;
  exchangeTime: string;
  simulated: boolean;
  marketOpen?: boolean;
  source?: string;
}

export interface Instrument {
  id: string;
  market: string;
  symbol: string;
  koreanName: string;
  englishName: string;
  currency: string;
  warning: boolean;
  quote: Quote | null;
  /** Why there is no quote, in a sentence. */
  quoteUnavailable?: string;
  quoteUnavailableReason?: 'not_configured' | 'switched_off' | 'waiting_for_first_price' | 'market_closed';
  /** When a closed market opens again. */
  quoteResumesAt?: string;
}

/** Every kind of condition the server knows (docs/api.md). */
export const CONDITIONS = [
  'ABOVE',
  'BELOW',
  'CHANGE_UP',
  'CHANGE_DOWN',
  'CROSS_UP',
  'CROSS_DOWN',
  'CROSSING',
  'CHANNEL_ENTER',
  'CHANNEL_EXIT',
  'MOVE_UP',
  'MOVE_DOWN',
  'VOLUME_SPIKE',
  'DAY_VOLUME',
  'MA_CROSS_UP',
  'MA_CROSS_DOWN',
  'RSI_ABOVE',
  'RSI_BELOW',
  'GOLDEN_CROSS',
  'DEAD_CROSS',
] as const;
export type Condition = (typeof CONDITIONS)[number];
export type RuleState = 'armed' | 'cooling' | 'triggered' | 'expired';
export type Repeat = 'once' | 'every' | 'once_per_bar' | 'once_per_bar_close';

export interface Average {
  average: 'SMA' | 'EMA';
  bars: number;
}

/** A condition's parameters, named as the API names them beside `condition`. */
export interface ConditionParams {
  level?: string;
  percent?: string;
  amount?: string;
  windowSeconds?: number | string;
  low?: string;
  high?: string;
  interval?: string;
  bars?: number;
  factor?: string;
  volume?: string;
  average?: 'SMA' | 'EMA';
  fast?: Average;
  slow?: Average;
}

const PARAMS: readonly (keyof ConditionParams)[] = [
  'level',
  'percent',
  'amount',
  'windowSeconds',
  'low',
  'high',
  'interval',
  'bars',
  'factor',
  'volume',
  'average',
  'fast',
  'slow',
];

/** The condition's parameters of a rule (without the rule's other fields). */
export function paramsOf(rule: ConditionParams): ConditionParams {
  const params: Record<string, unknown> = {};
  for (const key of PARAMS) if (rule[key] != null) params[key] = rule[key];
  return params as ConditionParams;
}

export interface RuleRequest extends ConditionParams {
  instrument: string;
  condition: Condition;
  repeat: Repeat;
  cooldownSeconds?: number | string;
  rearmBand?: string;
  expiresAt?: string;
  note?: string;
  /** What its alerts say, with `{{placeholders}}`; absent, the standard wording. */
  message?: string;
  /** The notification channels the rule uses; absent or null, all of them. */
  channels?: number[] | null;
}

export interface Rule extends ConditionParams {
  id: number;
  instrument: string;
  symbol: string;
  condition: Condition;
  repeat: Repeat;
  cooldownSeconds?: number;
  rearmBand?: string;
  expiresAt: string | null;
  note: string | null;
  message?: string | null;
  channels: number[] | null;
  state: RuleState;
  /** Not checked until resumed; its state is kept as it was. */
  paused?: boolean;
  /** Not checked until then. */
  snoozedUntil?: string | null;
  coolingUntil?: string;
  triggerCount: number;
  lastTriggeredAt: string | null;
  createdAt: string;
}

export interface Alert {
  id: number;
  ruleId: number;
  instrument: string;
  symbol: string;
  condition: Condition;
  level: string;
  percent?: string;
  price: string;
  triggeredAt: string;
  note: string | null;
  /** The rule's message, worded by the server in the reader's language and time zone. */
  message?: string;
  simulated: boolean;
  read: boolean;
}

export interface AlertPage {
  items: Alert[];
  nextBefore?: number | null;
}

export interface Candle {
  /** Start of the bar (RFC 3339); older answers named it `minute`. */
  time?: string;
  minute?: string;
  open: string;
  high: string;
  low: string;
  close: string;
  simulated?: boolean;
}

/** Candles of one interval, oldest first; `complete: false` while the exchange backfill runs. */
export interface CandleSeries {
  candles: Candle[];
  simulated?: boolean;
  complete?: boolean;
}

/** Reads either shape of the candle answer (a bare list, or the series object). */
export function candleSeries(answer: Candle[] | CandleSeries): CandleSeries {
  return Array.isArray(answer) ? { candles: answer, complete: true } : answer;
}

/** A refusal from the server: its status, its error code and its message for a person. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** The request member the server names as wrong, when it names one. */
    readonly field?: string,
  ) {
    super(message);
  }
}

/** Called when the server says the session is over (401), so the app can ask to sign in. */
let onSignedOut: () => void = () => {};
export function whenSignedOut(handler: () => void) {
  onSignedOut = handler;
}

function cookie(name: string): string | undefined {
  for (const part of document.cookie.split(';')) {
    const [key, ...value] = part.trim().split('=');
    if (key === name) return decodeURIComponent(value.join('='));
  }
  return undefined;
}

export async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET') {
    const csrf = cookie('signal_csrf');
    if (csrf) headers['X-CSRF-Token'] = csrf;
  }
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'network', 'network');
  }
  const text = await response.text();
  let data: any = undefined;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = undefined;
    }
  }
  if (!response.ok) {
    if (response.status === 401 && !path.startsWith('/api/v1/auth/')) onSignedOut();
    throw new ApiError(
      response.status,
      data?.error ?? 'http',
      data?.message ?? (response.statusText || String(response.status)),
      data?.field,
    );
  }
  return data as T;
}

export const get = <T>(path: string) => request<T>('GET', path);
export const post = <T>(path: string, body?: unknown) => request<T>('POST', path, body);
export const put = <T>(path: string, body?: unknown) => request<T>('PUT', path, body);
export const patch = <T>(path: string, body?: unknown) => request<T>('PATCH', path, body);
export const del = <T>(path: string) => request<T>('DELETE', path);

export const enc = encodeURIComponent;
