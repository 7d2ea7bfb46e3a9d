// New alerts, in the corner of every page for a few seconds.

import { dismiss, toasts } from '../alerts';
import { describeAlert, formatTime } from '../format';
import { t } from '../i18n';
import { Icon } from './Icon';
import { instrumentHref } from './InstrumentTable';
import { SimulatedTag } from './Price';

export function Toasts() {
  return (
    <section class="toasts" aria-label={t('toast.region')} aria-live="assertive">
      {toasts.value.map(({ alert, replayed }) => {
        const { title, body } = describeAlert(alert);
        return (
          <div class={`toast ${alert.condition === 'BELOW' || alert.condition === 'CHANGE_DOWN' ? 'down' : 'up'}`} key={alert.id} data-alert={alert.id}>
            <a class="toast-body" href={instrumentHref(alert.instrument)} onClick={() => dismiss(alert.id)}>
              <strong>{title}</strong>
              <span>{body}</span>
              <small>
                {formatTime(alert.triggeredAt)}
                {replayed && ` · ${t('toast.late')}`}
              </small>
              {alert.simulated && <SimulatedTag />}
            </a>
            <button type="button" class="icon-button" aria-label={t('close')} onClick={() => dismiss(alert.id)}>
              <Icon name="close" />
            </button>
          </div>
        );
      })}
    </section>
  );
}
