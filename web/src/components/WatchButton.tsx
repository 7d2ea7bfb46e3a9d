// The star that adds an instrument to the watchlist or takes it off.

import type { Instrument } from '../api';
import { nameOf } from '../format';
import { t } from '../i18n';
import { isWatched, unwatch, watch } from '../watchlist';
import { Icon } from './Icon';
import { announce } from './Announcer';

export function WatchButton({ instrument }: { instrument: Instrument }) {
  const watched = isWatched(instrument.id);
  const name = nameOf(instrument);
  const toggle = async () => {
    try {
      if (watched) {
        await unwatch(instrument);
        announce(t('watch.removed', { name }));
      } else {
        await watch(instrument);
        announce(t('watch.added', { name }));
      }
    } catch (e) {
      announce(e instanceof Error ? e.message : String(e), 'error');
    }
  };
  return (
    <button
      type="button"
      class={`icon-button star ${watched ? 'on' : ''}`}
      aria-label={t(watched ? 'watch.remove' : 'watch.add', { name })}
      title={t(watched ? 'watch.remove' : 'watch.add', { name })}
      onClick={toggle}
    >
      <Icon name="watchlist" filled={watched} />
    </button>
  );
}
