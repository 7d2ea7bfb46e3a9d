// Which of the person's notification channels a rule uses: all of them (the default, which
// takes in channels added later) or the ones picked. The app's own alert socket always receives,
// whatever is chosen here.

import { useEffect, useState } from 'preact/hooks';
import { listChannels, type Channel } from '../channels';
import { t } from '../i18n';

export function RuleChannels({
  value,
  onValue,
  problem,
}: {
  /** `null`: all channels; otherwise the ids picked. */
  value: number[] | null;
  onValue: (value: number[] | null) => void;
  problem?: string;
}) {
  const [channels, setChannels] = useState<Channel[]>();
  useEffect(() => {
    listChannels()
      .then((list) => setChannels(list.items))
      .catch(() => setChannels([]));
  }, []);
  const problemId = 'rule-channels-problem';
  if (channels === undefined) return null;
  if (channels.length === 0 && value === null) {
    return (
      <p class="hint">
        {t('ruleChannels.none')} <a href="/settings">{t('ruleChannels.manage')}</a>
      </p>
    );
  }
  const toggle = (id: number, on: boolean) => {
    const picked = new Set(value ?? []);
    if (on) picked.add(id);
    else picked.delete(id);
    onValue([...picked].sort((a, b) => a - b));
  };
  return (
    <fieldset class="field rule-channels" aria-describedby={problem ? problemId : undefined}>
      <legend>{t('ruleChannels.legend')}</legend>
      <label class="choice">
        <input type="radio" name="rule-channels" checked={value === null} onChange={() => onValue(null)} />
        {t('ruleChannels.all')}
      </label>
      <label class="choice">
        <input type="radio" name="rule-channels" checked={value !== null} onChange={() => onValue(value ?? [])} />
        {t('ruleChannels.chosen')}
      </label>
      {value !== null && (
        <ul class="rule-channel-list">
          {channels.map((channel) => (
            <li key={channel.id}>
              <label class="choice">
                <input
                  type="checkbox"
                  name="channel"
                  value={channel.id}
                  checked={value.includes(channel.id)}
                  onChange={(e) => toggle(channel.id, e.currentTarget.checked)}
                />
                {channel.name} ({t(`channel.${channel.kind}`)})
              </label>
            </li>
          ))}
        </ul>
      )}
      <p class="hint">{t('ruleChannels.appAlways')}</p>
      {problem && (
        <p class="problem" id={problemId} role="alert">
          {problem}
        </p>
      )}
    </fieldset>
  );
}
