// The person's alert rules and what can be done to one.

import { del, get, paramsOf, post, put, type Rule, type RuleRequest } from './api';

export function loadRules(): Promise<Rule[]> {
  return get<Rule[]>('/api/v1/rules');
}

export function deleteRule(rule: Rule): Promise<void> {
  return del(`/api/v1/rules/${rule.id}`);
}

/** A paused rule is not checked until it is resumed; resuming also ends a snooze. */
export function pauseRule(rule: Rule): Promise<Rule> {
  return post<Rule>(`/api/v1/rules/${rule.id}/pause`);
}

export function resumeRule(rule: Rule): Promise<Rule> {
  return post<Rule>(`/api/v1/rules/${rule.id}/resume`);
}

/** Saving a rule unchanged arms it again (after it fired or expired). */
export function rearmRule(rule: Rule): Promise<Rule> {
  const request: RuleRequest = {
    instrument: rule.instrument,
    condition: rule.condition,
    ...paramsOf(rule),
    repeat: rule.repeat,
    note: rule.note ?? undefined,
    channels: rule.channels,
  };
  if (rule.repeat === 'every') {
    request.cooldownSeconds = rule.cooldownSeconds;
    request.rearmBand = rule.rearmBand;
  }
  // An expiry already past would refuse the re-arm; a re-armed rule starts without it.
  if (rule.expiresAt && Date.parse(rule.expiresAt) > Date.now()) request.expiresAt = rule.expiresAt;
  return put<Rule>(`/api/v1/rules/${rule.id}`, request);
}
