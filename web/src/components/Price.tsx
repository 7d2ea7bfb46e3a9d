// An instrument's live price and change, coloured by the reader's convention, marked when the
// price is simulated, and saying why when there is none.

import type { Instrument } from '../api';
import { direction, formatPercent, formatPrice, formatTime } from '../format';
import { t } from '../i18n';
import { language } from '../prefs';
import { quoteOf } from '../quotes';

/** Why there is no price: the server's sentence, or its reason in the reader's language. */
export function unavailableReason(instrument: Instrument): string | undefined {
  const code = instrument.quoteUnavailableReason;
  if (language.value === 'en' || !code) return instrument.quoteUnavailable;
  if (code === 'market_closed' && instrument.quoteResumesAt) {
    return t('unavailable.market_closed_until', { time: formatTime(instrument.quoteResumesAt) });
  }
  return t(`unavailable.${code}`);
}

export function SimulatedTag() {
  return (
    <span class="tag tag-simulated" title={t('simulatedTitle')}>
      {t('simulated')}
    </span>
  );
}

export function Price({ instrument, large = false }: { instrument: Instrument; large?: boolean }) {
  const quote = quoteOf(instrument.id).value;
  if (!quote) {
    return (
      <span class="price price-missing">
        <span class="muted">{t('noPrice')}</span>
        {instrument.quoteUnavailable && <span class="reason">{unavailableReason(instrument)}</span>}
      </span>
    );
  }
  const trend = direction(quote.changePercent);
  return (
    <span class={`price ${large ? 'price-large' : ''}`}>
      <span class={`value ${trend}`} data-price={quote.price}>
        {formatPrice(quote.price)}
      </span>
      <span class={`change ${trend}`}>
        <span class="arrow" aria-hidden="true">
          {trend === 'up' ? '▲' : trend === 'down' ? '▼' : ''}
        </span>
        {formatPercent(quote.changePercent)}
      </span>
      {quote.simulated && <SimulatedTag />}
    </span>
  );
}
