// Rules with their state (armed, cooling, triggered, expired; paused or snoozed), how often and
// when they last fired, and what can be done to each: pause, resume, edit, re-arm, delete.

import type { Rule } from '../api';
import { describeRule, formatTime, nameOf } from '../format';
import { t, tn } from '../i18n';
import { deleteRule, pauseRule, rearmRule, resumeRule } from '../rules';
import { announce } from './Announcer';
import { Icon } from './Icon';
import { instrumentHref } from './InstrumentTable';

export function RuleList({
  rules,
  empty,
  showInstrument = false,
  onChanged,
  onEdit,
}: {
  rules: Rule[];
  empty: string;
  showInstrument?: boolean;
  onChanged: () => void | Promise<void>;
  onEdit: (rule: Rule) => void;
}) {
  if (rules.length === 0) return <p class="muted">{empty}</p>;
  const act = async (action: () => Promise<unknown>, done?: string) => {
    try {
      await action();
      if (done) announce(done);
      await onChanged();
    } catch (e) {
      announce(e instanceof Error ? e.message : String(e), 'error');
    }
  };
  return (
    <ul class="rules">
      {rules.map((rule) => {
        const { state } = rule;
        const snoozed = rule.snoozedUntil && Date.parse(rule.snoozedUntil) > Date.now() ? rule.snoozedUntil : undefined;
        // A server that can pause rules says whether each one is.
        const pausable = rule.paused !== undefined && (state === 'armed' || state === 'cooling');
        const label = `${showInstrument ? nameOf(rule.instrument) + ' ' : ''}${describeRule(rule)}`;
        return (
          <li class={`rule rule-${state}`} key={rule.id} data-rule={rule.id} data-paused={rule.paused ? 'true' : undefined}>
            <div class="rule-main">
              <p class="rule-title">
                {showInstrument && (
                  <a href={instrumentHref(rule.instrument)} class="rule-instrument">
                    {nameOf(rule.instrument)}
                  </a>
                )}
                <span class="rule-condition">{describeRule(rule)}</span>
                <span class={`state state-${state}`}>{t(`state.${state}`)}</span>
                {rule.paused && <span class="state state-paused">{t('state.paused')}</span>}
                {rule.repeat === 'every' && <span class="tag">{t('repeat.every')}</span>}
              </p>
              <p class="rule-meta muted">
                {rule.triggerCount > 0
                  ? `${tn('rules.fired', rule.triggerCount)}, ${t('rules.last', { time: formatTime(rule.lastTriggeredAt) })}`
                  : t('rules.never')}
                {rule.coolingUntil && state === 'cooling' && ` · ${t('rules.coolingUntil', { time: formatTime(rule.coolingUntil) })}`}
                {rule.expiresAt && ` · ${t('rules.expires', { time: formatTime(rule.expiresAt) })}`}
                {snoozed && !rule.paused && ` · ${t('rules.snoozedUntil', { time: formatTime(snoozed) })}`}
              </p>
              {rule.note && <p class="rule-note">{rule.note}</p>}
            </div>
            <div class="row-actions">
              {rule.paused || snoozed ? (
                <button type="button" class="small" aria-label={t('action.resumeRule', { rule: label })} onClick={() => act(() => resumeRule(rule), t('rules.resumed'))}>
                  <Icon name="play" /> <span>{t('action.resume')}</span>
                </button>
              ) : (
                pausable && (
                  <button type="button" class="small" aria-label={t('action.pauseRule', { rule: label })} onClick={() => act(() => pauseRule(rule), t('rules.paused'))}>
                    <Icon name="pause" /> <span>{t('action.pause')}</span>
                  </button>
                )
              )}
              {(state === 'triggered' || state === 'expired') && (
                <button type="button" class="small" aria-label={t('action.rearmRule', { rule: label })} onClick={() => act(() => rearmRule(rule))}>
                  <Icon name="rearm" /> <span>{t('action.rearm')}</span>
                </button>
              )}
              <button type="button" class="icon-button" aria-label={t('action.editRule', { rule: label })} onClick={() => onEdit(rule)}>
                <Icon name="edit" />
              </button>
              <button
                type="button"
                class="icon-button danger"
                aria-label={t('action.deleteRule', { rule: label })}
                onClick={() => {
                  if (confirm(t('rules.confirmDelete', { rule: label }))) void act(() => deleteRule(rule), t('rules.deleted'));
                }}
              >
                <Icon name="trash" />
              </button>
            </div>
          </li>
        );
      })}
    </ul>
  );
}
