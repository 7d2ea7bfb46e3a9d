// The form for an alert rule with every option: condition (price levels, crossings, bands and
// moves within a time window; a rule of a kind made through the API keeps its settings), its
// parameters, repeat mode, cooldown and re-arm band, expiry and note. Nothing is checked in the browser: the server's
// answer is the one rule, and its message appears next to the field it is about.

import { useState } from 'preact/hooks';
import { paramsOf, post, put, type Condition, type Instrument, type Repeat, type Rule, type RuleRequest } from '../api';
import { t } from '../i18n';
import { Field, FormProblem, TextField, useProblems } from './Field';

const FIELDS = [
  'condition',
  'level',
  'percent',
  'low',
  'high',
  'windowSeconds',
  'cooldownSeconds',
  'rearmBand',
  'expiresAt',
  'note',
] as const;
type FieldName = (typeof FIELDS)[number];

/** The conditions this form edits, and the parameter fields each one shows. */
const FORM_CONDITIONS: Partial<Record<Condition, readonly FieldName[]>> = {
  ABOVE: ['level'],
  BELOW: ['level'],
  CHANGE_UP: ['percent'],
  CHANGE_DOWN: ['percent'],
  CROSS_UP: ['level'],
  CROSS_DOWN: ['level'],
  CROSSING: ['level'],
  CHANNEL_ENTER: ['low', 'high'],
  CHANNEL_EXIT: ['low', 'high'],
  MOVE_UP: ['percent', 'windowSeconds'],
  MOVE_DOWN: ['percent', 'windowSeconds'],
};

/** `2026-12-31T09:00` in the reader's time zone, for a datetime-local input. */
function localInput(iso: string | null | undefined): string {
  if (!iso) return '';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '';
  const offset = date.getTimezoneOffset() * 60_000;
  return new Date(date.getTime() - offset).toISOString().slice(0, 16);
}

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
  const [level, setLevel] = useState(rule?.level ?? draft?.level ?? '');
  const [percent, setPercent] = useState(rule?.percent ?? '');
  const [low, setLow] = useState(rule?.low ?? '');
  const [high, setHigh] = useState(rule?.high ?? '');
  const [windowSeconds, setWindowSeconds] = useState(String(rule?.windowSeconds ?? '300'));
  const [repeat, setRepeat] = useState<Repeat>(rule?.repeat ?? 'once');
  const [cooldown, setCooldown] = useState(String(rule?.cooldownSeconds ?? '300'));
  const [band, setBand] = useState(rule?.rearmBand ?? '0');
  const [expires, setExpires] = useState(localInput(rule?.expiresAt));
  const [note, setNote] = useState(rule?.note ?? '');
  const [busy, setBusy] = useState(false);
  const { problems, show, clear } = useProblems(FIELDS);
  // A kind this form has no fields for keeps the rule's own parameters.
  const shownParams = FORM_CONDITIONS[condition];
  const has = (field: FieldName) => shownParams?.includes(field) ?? false;
  const options = (Object.keys(FORM_CONDITIONS) as Condition[]).concat(
    rule && !FORM_CONDITIONS[rule.condition] ? [rule.condition] : [],
  );
  const repeats: Repeat[] = ['once', 'every', ...(rule && rule.repeat.startsWith('once_per') ? [rule.repeat] : [])];

  const submit = async (e: Event) => {
    e.preventDefault();
    clear();
    const request: RuleRequest = { instrument: instrument.id, condition, repeat };
    if (!shownParams && rule) Object.assign(request, paramsOf(rule));
    // Nothing typed is left out, for the server to say it is missing.
    const typed: Partial<Record<FieldName, string>> = { level, percent, low, high };
    for (const field of ['level', 'percent', 'low', 'high'] as const) {
      if (has(field) && typed[field]?.trim()) request[field] = typed[field]?.trim();
    }
    if (has('windowSeconds')) {
      const text = windowSeconds.trim();
      request.windowSeconds = /^-?\d+$/.test(text) ? Number(text) : text;
    }
    if (repeat === 'every') {
      // A whole number goes as a number; anything else as typed, for the server to name.
      request.cooldownSeconds = /^-?\d+$/.test(cooldown.trim()) ? Number(cooldown.trim()) : cooldown.trim();
      if (band.trim()) request.rearmBand = band.trim();
    }
    if (expires) {
      const date = new Date(expires);
      request.expiresAt = Number.isNaN(date.getTime()) ? expires : date.toISOString();
    }
    if (note.trim()) request.note = note.trim();
    setBusy(true);
    try {
      const saved = rule
        ? await put<Rule>(`/api/v1/rules/${rule.id}`, request)
        : await post<Rule>('/api/v1/rules', request);
      onSaved(saved);
    } catch (error) {
      show(
        error,
        [
          'condition',
          ...(shownParams ?? []),
          ...(repeat === 'every' ? (['cooldownSeconds', 'rearmBand'] as const) : []),
          'expiresAt',
          'note',
        ],
        { level, percent, low, high, windowSeconds, cooldownSeconds: cooldown, rearmBand: band, expiresAt: expires, note },
      );
    } finally {
      setBusy(false);
    }
  };

  const id = (name: string) => `rule-${name}`;
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
            {options.map((c) => (
              <option value={c} key={c}>
                {t(`cond.${c}`)}
              </option>
            ))}
          </select>
        )}
      </Field>
      {has('level') && (
        <TextField
          id={id('level')}
          name="level"
          label={`${t('form.level')} (${instrument.currency})`}
          problem={problems.level}
          inputMode="decimal"
          autoComplete="off"
          value={level}
          onValue={setLevel}
        />
      )}
      {has('low') && (
        <div class="field-row">
          <TextField
            id={id('low')}
            name="low"
            label={`${t('form.low')} (${instrument.currency})`}
            problem={problems.low}
            inputMode="decimal"
            autoComplete="off"
            value={low}
            onValue={setLow}
          />
          <TextField
            id={id('high')}
            name="high"
            label={`${t('form.high')} (${instrument.currency})`}
            problem={problems.high}
            inputMode="decimal"
            autoComplete="off"
            value={high}
            onValue={setHigh}
          />
        </div>
      )}
      {has('percent') && (
        <TextField
          id={id('percent')}
          name="percent"
          label={t('form.percent')}
          problem={problems.percent}
          inputMode="decimal"
          autoComplete="off"
          value={percent}
          onValue={setPercent}
        />
      )}
      {has('windowSeconds') && (
        <TextField
          id={id('window')}
          name="windowSeconds"
          label={t('form.window')}
          problem={problems.windowSeconds}
          inputMode="numeric"
          autoComplete="off"
          value={windowSeconds}
          onValue={setWindowSeconds}
        />
      )}
      {!shownParams && <p class="hint">{t('form.otherParams')}</p>}
      <fieldset class="field">
        <legend>{t('form.repeat')}</legend>
        {repeats.map((mode) => (
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
      <FormProblem problem={problems.form} />
      <div class="form-actions">
        <button type="submit" class="primary" disabled={busy}>
          {rule ? t('form.save') : t('form.create')}
        </button>
      </div>
    </form>
  );
}
