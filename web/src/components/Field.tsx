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

/** Which of `fields` a refusal is about: the one the server names, else the one it mentions. */
export function fieldOf(error: ApiError, fields: readonly string[]): string | undefined {
  if (error.field && fields.includes(error.field)) return error.field;
  // The most specific mention wins (`currentPassword` before `password`).
  const mentioned = fields.filter((f) => FIELD_WORDS[f]?.test(error.message) || error.message.includes(`\`${f}\``));
  return mentioned.sort((a, b) => b.length - a.length)[0];
}

/** Problems by field, plus one for the whole form when no field fits. */
export function useProblems<F extends string>(fields: readonly F[]) {
  const [problems, setProblems] = useState<Partial<Record<F | 'form', string>>>({});
  return {
    problems,
    clear: () => setProblems({}),
    show(error: unknown) {
      if (error instanceof ApiError) {
        if (error.status === 0) return setProblems({ form: t('networkError') } as never);
        const field = fieldOf(error, fields) as F | undefined;
        setProblems({ [field ?? 'form']: error.message } as never);
      } else {
        setProblems({ form: String(error) } as never);
      }
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
