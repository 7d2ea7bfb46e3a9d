// The form for an alert rule with every option: each kind of condition the server accepts (price
// levels, crossings, bands, moves within a time window, volume and indicators), its parameters,
// repeat mode, cooldown and re-arm band, expiry and note. Nothing is checked in the browser: the
// server's answer is the one rule, and its message appears next to the field it is about.

import { useState } from 'preact/hooks';
import { post, put, type Condition, type Instrument, type Repeat, type Rule, type RuleRequest } from '../api';
import type { Key } from '../i18n';
import { t } from '../i18n';
import { Field, FormProblem, TextField, useProblems } from './Field';
import { RuleChannels } from './RuleChannels';

/** A parameter input: its state key, the request member it fills (`fast.bars` inside `fast`). */
type Param =
  | 'level'
  | 'rsiLevel'
  | 'percent'
  | 'amount'
  | 'windowSeconds'
  | 'low'
  | 'high'
  | 'interval'
  | 'bars'
  | 'factor'
  | 'volume'
  | 'average'
  | 'fastAverage'
  | 'fastBars'
  | 'slowAverage'
  | 'slowBars';

const WIRE: Record<Param, string> = {
  level: 'level',
  rsiLevel: 'level',
  percent: 'percent',
  amount: 'amount',
  windowSeconds: 'windowSeconds',
  low: 'low',
  high: 'high',
  interval: 'interval',
  bars: 'bars',
  factor: 'factor',
  volume: 'volume',
  average: 'average',
  fastAverage: 'fast.average',
  fastBars: 'fast.bars',
  slowAverage: 'slow.average',
  slowBars: 'slow.bars',
};

/** Whole numbers go as numbers; anything else as typed, for the server to name. */
const WHOLE: ReadonlySet<Param> = new Set(['windowSeconds', 'bars', 'fastBars', 'slowBars']);
const INTERVALS = ['1m', '5m', '15m', '1h', '1d'] as const;
const AVERAGES = ['SMA', 'EMA'] as const;

/** Each kind's inputs, in order; a move is measured in percent or in price (`moveBy`). */
function paramsOf(condition: Condition, moveBy: 'percent' | 'amount'): readonly Param[] {
  switch (condition) {
    case 'ABOVE':
    case 'BELOW':
    case 'CROSS_UP':
    case 'CROSS_DOWN':
    case 'CROSSING':
      return ['level'];
    case 'CHANGE_UP':
    case 'CHANGE_DOWN':
      return ['percent'];
    case 'CHANNEL_ENTER':
    case 'CHANNEL_EXIT':
      return ['low', 'high'];
    case 'MOVE_UP':
    case 'MOVE_DOWN':
      return [moveBy, 'windowSeconds'];
    case 'VOLUME_SPIKE':
      return ['interval', 'bars', 'factor'];
    case 'DAY_VOLUME':
      return ['volume'];
    case 'MA_CROSS_UP':
    case 'MA_CROSS_DOWN':
      return ['interval', 'average', 'bars'];
    case 'RSI_ABOVE':
    case 'RSI_BELOW':
      return ['interval', 'bars', 'rsiLevel'];
    case 'GOLDEN_CROSS':
    case 'DEAD_CROSS':
      return ['interval', 'fastAverage', 'fastBars', 'slowAverage', 'slowBars'];
  }
}

/** The kinds, grouped as the condition list shows them. */
const GROUPS: readonly [Key, readonly Condition[]][] = [
  ['cond.group.price', ['ABOVE', 'BELOW', 'CROSS_UP', 'CROSS_DOWN', 'CROSSING', 'CHANNEL_ENTER', 'CHANNEL_EXIT']],
  ['cond.group.change', ['CHANGE_UP', 'CHANGE_DOWN', 'MOVE_UP', 'MOVE_DOWN']],
  ['cond.group.volume', ['VOLUME_SPIKE', 'DAY_VOLUME']],
  ['cond.group.indicator', ['MA_CROSS_UP', 'MA_CROSS_DOWN', 'RSI_ABOVE', 'RSI_BELOW', 'GOLDEN_CROSS', 'DEAD_CROSS']],
];

type Values = Record<Param, string>;

function initialValues(rule: Rule | undefined, draft: RuleDraft | undefined): Values {
  const text = (value: string | number | null | undefined, fallback = '') => (value == null ? fallback : String(value));
  const rsi = rule?.condition === 'RSI_ABOVE' || rule?.condition === 'RSI_BELOW';
  return {
    level: rsi ? '' : text(rule?.level ?? draft?.level),
    rsiLevel: rsi ? text(rule?.level) : '70',
    percent: text(rule?.percent),
    amount: text(rule?.amount),
    windowSeconds: text(rule?.windowSeconds, '300'),
    low: text(rule?.low),
    high: text(rule?.high),
    interval: text(rule?.interval, '15m'),
    bars: text(rule?.bars, '14'),
    factor: text(rule?.factor, '3'),
    volume: text(rule?.volume),
    average: text(rule?.average, 'SMA'),
    fastAverage: text(rule?.fast?.average, 'SMA'),
    fastBars: text(rule?.fast?.bars, '5'),
    slowAverage: text(rule?.slow?.average, 'SMA'),
    slowBars: text(rule?.slow?.bars, '20'),
  };
}

/** `2026-12-31T09:00` in the reader's time zone, for a datetime-local input. */
function localInput(iso: string | null | undefined): string {
  if (!iso) return '';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '';
  const offset = date.getTimezoneOffset() * 60_000;
  return new Date(date.getTime() - offset).toISOString().slice(0, 16);
}

const asTyped = (param: Param, value: string): string | number =>
  WHOLE.has(param) && /^-?\d+$/.test(value) ? Number(value) : value;

export interface RuleDraft {
  condition: Condition;
  level?: string;
}

export function RuleForm({
  instrument,
  rule,
  draft,
  onSaved,
}: {
  instrument: Instrument;
  rule?: Rule;
  draft?: RuleDraft;
  onSaved: (rule: Rule) => void;
}) {
  const [condition, setCondition] = useState<Condition>(rule?.condition ?? draft?.condition ?? 'ABOVE');
  const [values, setValues] = useState<Values>(() => initialValues(rule, draft));
  const [moveBy, setMoveBy] = useState<'percent' | 'amount'>(rule?.amount ? 'amount' : 'percent');
  const [repeat, setRepeat] = useState<Repeat>(rule?.repeat ?? 'once');
  const [cooldown, setCooldown] = useState(String(rule?.cooldownSeconds ?? '300'));
  const [band, setBand] = useState(rule?.rearmBand ?? '0');
  const [expires, setExpires] = useState(localInput(rule?.expiresAt));
  const [note, setNote] = useState(rule?.note ?? '');
  const [message, setMessage] = useState(rule?.message ?? '');
  const [channels, setChannels] = useState<number[] | null>(rule?.channels ?? null);
  const [busy, setBusy] = useState(false);
  const { problems, show, clear } = useProblems<string>([]);
  const set = (param: Param) => (value: string) => setValues((v) => ({ ...v, [param]: value }));
  const own = paramsOf(condition, moveBy);
  // The per-bar frequencies need an interval; a kind without its own takes one beside it.
  const shown: readonly Param[] =
    repeat.startsWith('once_per') && !own.includes('interval') ? [...own, 'interval'] : own;

  const submit = async (e: Event) => {
    e.preventDefault();
    clear();
    const request: RuleRequest = { instrument: instrument.id, condition, repeat };
    const members = request as unknown as Record<string, unknown>;
    for (const param of shown) {
      const value = values[param].trim();
      // Nothing typed is left out, for the server to say it is missing.
      if (!value) continue;
      const [outer, inner] = WIRE[param].split('.');
      if (inner) {
        const nested = (members[outer] ?? {}) as Record<string, unknown>;
        nested[inner] = asTyped(param, value);
        members[outer] = nested;
      } else {
        members[outer] = asTyped(param, value);
      }
    }
    if (repeat === 'every') {
      request.cooldownSeconds = /^-?\d+$/.test(cooldown.trim()) ? Number(cooldown.trim()) : cooldown.trim();
      if (band.trim()) request.rearmBand = band.trim();
    }
    if (expires) {
      const date = new Date(expires);
      request.expiresAt = Number.isNaN(date.getTime()) ? expires : date.toISOString();
    }
    if (note.trim()) request.note = note.trim();
    if (message.trim()) request.message = message.trim();
    if (channels !== null) request.channels = channels;
    setBusy(true);
    try {
      const saved = rule
        ? await put<Rule>(`/api/v1/rules/${rule.id}`, request)
        : await post<Rule>('/api/v1/rules', request);
      onSaved(saved);
    } catch (error) {
      const typed: Record<string, string> = { cooldownSeconds: cooldown, rearmBand: band, expiresAt: expires, note, message };
      for (const param of shown) typed[WIRE[param]] = values[param];
      show(
        error,
        [
          'condition',
          ...shown.map((param) => WIRE[param]),
          ...(repeat === 'every' ? ['cooldownSeconds', 'rearmBand'] : []),
          'expiresAt',
          'note',
          'message',
          'channels',
        ],
        typed,
      );
    } finally {
      setBusy(false);
    }
  };

  const id = (name: string) => `rule-${name}`;
  const text = (param: Param, label: string, inputMode: 'decimal' | 'numeric' = 'decimal') => (
    <TextField
      key={param}
      id={id(param)}
      name={WIRE[param]}
      label={label}
      problem={problems[WIRE[param]]}
      inputMode={inputMode}
      autoComplete="off"
      value={values[param]}
      onValue={set(param)}
    />
  );
  const choice = (param: Param, label: string, options: readonly { value: string; label: string }[]) => (
    <Field key={param} id={id(param)} label={label} problem={problems[WIRE[param]]}>
      {(describedBy, invalid) => (
        <select
          id={id(param)}
          name={WIRE[param]}
          value={values[param]}
          aria-describedby={describedBy}
          aria-invalid={invalid}
          onChange={(e) => set(param)(e.currentTarget.value)}
        >
          {options.map((o) => (
            <option value={o.value} key={o.value}>
              {o.label}
            </option>
          ))}
        </select>
      )}
    </Field>
  );
  const price = (key: Key) => `${t(key)} (${instrument.currency})`;
  const intervals = INTERVALS.map((i) => ({ value: i, label: t(`interval.${i}`) }));
  const averages = AVERAGES.map((a) => ({ value: a, label: t(`average.${a}`) }));
  const input = (param: Param) => {
    switch (param) {
      case 'level':
        return text(param, price('form.level'));
      case 'rsiLevel':
        return text(param, t('form.rsiLevel'));
      case 'percent':
        return text(param, t('form.percent'));
      case 'amount':
        return text(param, price('form.amount'));
      case 'windowSeconds':
        return text(param, t('form.window'), 'numeric');
      case 'low':
        return text(param, price('form.low'));
      case 'high':
        return text(param, price('form.high'));
      case 'interval':
        return choice(param, t('form.interval'), intervals);
      case 'bars':
        return text(param, t('form.bars'), 'numeric');
      case 'factor':
        return text(param, t('form.factor'));
      case 'volume':
        return text(param, t('form.volume'));
      case 'average':
        return choice(param, t('form.average'), averages);
      case 'fastAverage':
        return choice(param, t('form.fastAverage'), averages);
      case 'fastBars':
        return text(param, t('form.fastBars'), 'numeric');
      case 'slowAverage':
        return choice(param, t('form.slowAverage'), averages);
      case 'slowBars':
        return text(param, t('form.slowBars'), 'numeric');
    }
  };

  return (
    <form class="rule-form" onSubmit={submit} noValidate>
      <Field id={id('condition')} label={t('form.condition')} problem={problems.condition}>
        {(describedBy, invalid) => (
          <select
            id={id('condition')}
            value={condition}
            aria-describedby={describedBy}
            aria-invalid={invalid}
            onChange={(e) => setCondition(e.currentTarget.value as Condition)}
          >
            {GROUPS.map(([group, kinds]) => (
              <optgroup label={t(group)} key={group}>
                {kinds.map((c) => (
                  <option value={c} key={c}>
                    {t(`cond.${c}`)}
                  </option>
                ))}
              </optgroup>
            ))}
          </select>
        )}
      </Field>
      {(condition === 'MOVE_UP' || condition === 'MOVE_DOWN') && (
        <fieldset class="field">
          <legend>{t('form.moveBy')}</legend>
          {(['percent', 'amount'] as const).map((by) => (
            <label class="choice" key={by}>
              <input type="radio" name="moveBy" value={by} checked={moveBy === by} onChange={() => setMoveBy(by)} />
              {t(`form.moveBy.${by}`)}
            </label>
          ))}
        </fieldset>
      )}
      <div class={shown.length > 1 ? 'field-row' : undefined}>{shown.map(input)}</div>
      <fieldset class="field">
        <legend>{t('form.repeat')}</legend>
        {(['once', 'every', 'once_per_bar', 'once_per_bar_close'] as const).map((mode) => (
          <label class="choice" key={mode}>
            <input
              type="radio"
              name="repeat"
              value={mode}
              checked={repeat === mode}
              onChange={() => setRepeat(mode)}
            />
            {t(`repeat.${mode}`)}
          </label>
        ))}
      </fieldset>
      {repeat === 'every' && (
        <div class="field-row">
          <TextField
            id={id('cooldown')}
            name="cooldownSeconds"
            label={t('form.cooldown')}
            problem={problems.cooldownSeconds}
            inputMode="numeric"
            value={cooldown}
            onValue={setCooldown}
          />
          <TextField
            id={id('band')}
            name="rearmBand"
            label={t('form.rearm')}
            hint={t('form.rearmHint')}
            problem={problems.rearmBand}
            inputMode="decimal"
            value={band}
            onValue={setBand}
          />
        </div>
      )}
      <TextField
        id={id('expires')}
        name="expiresAt"
        type="datetime-local"
        label={t('form.expires')}
        problem={problems.expiresAt}
        value={expires}
        onValue={setExpires}
      />
      <Field id={id('note')} label={t('form.note')} problem={problems.note}>
        {(describedBy, invalid) => (
          <textarea
            id={id('note')}
            name="note"
            rows={2}
            value={note}
            aria-describedby={describedBy}
            aria-invalid={invalid}
            onInput={(e) => setNote(e.currentTarget.value)}
          />
        )}
      </Field>
      <Field id={id('message')} label={t('form.message')} hint={t('form.messageHint')} problem={problems.message}>
        {(describedBy, invalid) => (
          <textarea
            id={id('message')}
            name="message"
            rows={2}
            value={message}
            aria-describedby={describedBy}
            aria-invalid={invalid}
            onInput={(e) => setMessage(e.currentTarget.value)}
          />
        )}
      </Field>
      <RuleChannels value={channels} onValue={setChannels} problem={problems.channels} />
      <FormProblem problem={problems.form} />
      <div class="form-actions">
        <button type="submit" class="primary" disabled={busy}>
          {rule ? t('form.save') : t('form.create')}
        </button>
      </div>
    </form>
  );
}
