// New alerts, in the corner of every page for a few seconds; a backlog delivered after being
// away is one toast pointing to the history.

import { dismiss, toasts } from '../alerts';
import { describeAlert, formatTime } from '../format';
import { t } from '../i18n';
import { Icon } from './Icon';
import { instrumentHref } from './InstrumentTable';
import { SimulatedTag } from './Price';

export function Toasts() {
  return (
    <section class="toasts" aria-label={t('toast.region')} aria-live="assertive">
      {toasts.value.map((toast) => {
        if (toast.kind === 'missed') {
          return (
            <div class="toast" key={toast.id} data-missed={toast.count}>
              <a class="toast-body" href="/alerts" onClick={() => dismiss(toast.id)}>
                <strong>{t('toast.missed', { n: toast.count })}</strong>
                <span>{t('toast.openHistory')}</span>
              </a>
              <button type="button" class="icon-button" aria-label={t('close')} onClick={() => dismiss(toast.id)}>
                <Icon name="close" />
              </button>
            </div>
          );
        }
        const { alert, replayed } = toast;
        const { title, body } = describeAlert(alert);
        const falling = alert.condition === 'BELOW' || alert.condition === 'CHANGE_DOWN';
        return (
          <div class={`toast ${falling ? 'down' : 'up'}`} key={toast.id} data-alert={alert.id}>
            <a class="toast-body" href={instrumentHref(alert.instrument)} onClick={() => dismiss(toast.id)}>
              <strong>{title}</strong>
              <span>{body}</span>
              <small>
                {formatTime(alert.triggeredAt)}
                {replayed && ` · ${t('toast.late')}`}
                {alert.simulated && <SimulatedTag />}
              </small>
            </a>
            <button type="button" class="icon-button" aria-label={t('close')} onClick={() => dismiss(toast.id)}>
              <Icon name="close" />
            </button>
          </div>
        );
      })}
    </section>
  );
}
