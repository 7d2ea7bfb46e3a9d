// A labelled form field with its problem, as the server words it, right under it.

import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { ApiError } from '../api';
import { t } from '../i18n';

/** Words in a server message that tell which field it is about, when the server does not say. */
const FIELD_WORDS: Record<string, RegExp> = {
  email: /e-?mail/i,
  password: /password/i,
  currentPassword: /current password|currentPassword/i,
  newPassword: /new password|newPassword/i,
  level: /\blevel\b|price/i,
  percent: /percent/i,
  cooldownSeconds: /cooldown/i,
  rearmBand: /re-?arm|rearmBand/i,
  expiresAt: /expir/i,
  note: /\bnote\b/i,
  condition: /condition/i,
};

/** Where in `message` field `f` is mentioned, if it is. */
function mention(message: string, f: string): number {
  const found = FIELD_WORDS[f]?.exec(message)?.index ?? message.indexOf(`\`${f}\``);
  return found ?? -1;
}

/**
 * Which of the form's `fields` (those on screen) a refusal is about: the one the server names,
 * else the one its message mentions first (the longer name first at one place: `current
 * password` before `password`), else the one whose value, as typed in `values`, the message
 * quotes (a body the server could not read says "`abc` is not a number" or `invalid type:
 * string "an hour"`).
 */
export function fieldOf(
  error: ApiError,
  fields: readonly string[],
  values: Partial<Record<string, string>> = {},
): string | undefined {
  if (error.field) return fields.includes(error.field) ? error.field : undefined;
  const mentioned = fields
    .map((f) => ({ f, at: mention(error.message, f) }))
    .filter(({ at }) => at >= 0)
    .sort((a, b) => a.at - b.at || b.f.length - a.f.length)[0]?.f;
  const quotes = (value: string) => error.message.includes(`\`${value}\``) || error.message.includes(`"${value}"`);
  return mentioned ?? fields.find((f) => values[f]?.trim() && quotes(values[f]!.trim()));
}

type Problems<F extends string> = Partial<Record<F | 'form', string>>;

/** Problems by field, plus one for the whole form when no field on screen fits. */
export function useProblems<F extends string>(fields: readonly F[]) {
  const [problems, setProblems] = useState<Problems<F>>({});
  return {
    problems,
    clear: () => setProblems({}),
    /**
     * Shows a refusal next to the field it is about, among `shown` (default: all fields), whose
     * values as typed are `values`.
     */
    show(error: unknown, shown: readonly F[] = fields, values: Partial<Record<F, string>> = {}) {
      const problem = (at: F | 'form', message: string): Problems<F> => ({ [at]: message }) as Problems<F>;
      if (!(error instanceof ApiError)) return setProblems(problem('form', String(error)));
      if (error.status === 0) return setProblems(problem('form', t('networkError')));
      setProblems(problem((fieldOf(error, shown, values) as F | undefined) ?? 'form', error.message));
    },
  };
}

export function Field({
  id,
  label,
  problem,
  hint,
  children,
}: {
  id: string;
  label: string;
  problem?: string;
  hint?: string;
  children: (describedBy: string | undefined, invalid: boolean) => ComponentChildren;
}) {
  const described = [hint && `${id}-hint`, problem && `${id}-problem`].filter(Boolean).join(' ') || undefined;
  return (
    <div class={`field ${problem ? 'has-problem' : ''}`}>
      <label for={id}>{label}</label>
      {children(described, Boolean(problem))}
      {hint && (
        <p class="hint" id={`${id}-hint`}>
          {hint}
        </p>
      )}
      {problem && (
        <p class="problem" id={`${id}-problem`} data-field-problem>
          {problem}
        </p>
      )}
    </div>
  );
}

export function FormProblem({ problem }: { problem?: string }) {
  return problem ? (
    <p class="problem form-problem" role="alert" data-field-problem>
      {problem}
    </p>
  ) : null;
}

/** A labelled text input with its problem under it. */
export function TextField({
  id,
  label,
  value,
  onValue,
  problem,
  hint,
  type = 'text',
  ...input
}: {
  id: string;
  label: string;
  value: string;
  onValue: (value: string) => void;
  problem?: string;
  hint?: string;
  type?: 'text' | 'email' | 'password' | 'datetime-local';
  name?: string;
  inputMode?: 'decimal' | 'numeric' | 'email' | 'text';
  autoComplete?: string;
}) {
  return (
    <Field id={id} label={label} problem={problem} hint={hint}>
      {(describedBy, invalid) => (
        <input
          id={id}
          // Preact types each input type apart; all of these take the same attributes.
          type={type as 'text'}
          value={value}
          aria-describedby={describedBy}
          aria-invalid={invalid}
          onInput={(e) => onValue(e.currentTarget.value)}
          {...input}
        />
      )}
    </Field>
  );
}
