// Where a notification's snooze action leads (`/rules/7/snooze?for=1h`): the rule is snoozed as
// the signed-in person, at once when the link names a duration, and the other durations stay
// offered. Links rather than signed requests, so a notification that leaks or a mail scanner that
// follows its links snoozes nothing without the person's session.

import { useEffect, useState } from 'preact/hooks';
import { useLocation } from 'preact-iso/router';
import { post, type Rule } from '../api';
import { announce } from '../components/Announcer';
import { formatTime } from '../format';
import { t } from '../i18n';

const DURATIONS = { '15m': 900, '1h': 3_600, '1d': 86_400 } as const;
type Duration = keyof typeof DURATIONS;
const isDuration = (text: string | undefined): text is Duration => text !== undefined && text in DURATIONS;

export function Snooze({ id }: { id: string }) {
  const { query } = useLocation();
  const [until, setUntil] = useState<string>();
  const [problem, setProblem] = useState<string>();
  const [busy, setBusy] = useState(false);

  const snooze = async (duration: Duration) => {
    setBusy(true);
    setProblem(undefined);
    try {
      const rule = await post<Rule & { snoozedUntil?: string | null }>(`/api/v1/rules/${encodeURIComponent(id)}/snooze`, {
        seconds: DURATIONS[duration],
      });
      const text = t('snooze.done', { id, until: formatTime(rule.snoozedUntil) });
      setUntil(text);
      announce(text);
    } catch (e) {
      setProblem(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };

  const asked = query.for;
  useEffect(() => {
    if (isDuration(asked)) void snooze(asked);
  }, [id, asked]);

  return (
    <div class="page snooze-page">
      <h1>{t('snooze.title')}</h1>
      <section class="card">
        {busy && (
          <p class="muted" role="status">
            {t('snooze.working')}
          </p>
        )}
        {until && (
          <p class="snoozed" role="status">
            {until}
          </p>
        )}
        {problem && (
          <p class="problem" role="alert">
            {problem}
          </p>
        )}
        <p>{t('snooze.pick', { id })}</p>
        <div class="toolbar-actions">
          {(Object.keys(DURATIONS) as Duration[]).map((duration) => (
            <button type="button" key={duration} disabled={busy} onClick={() => void snooze(duration)}>
              {t(`snooze.${duration}`)}
            </button>
          ))}
        </div>
        <p>
          <a href="/rules">{t('snooze.back')}</a>
        </p>
      </section>
    </div>
  );
}
