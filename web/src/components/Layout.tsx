// The frame of every signed-in page: the brand, the connection state (always visible), the
// navigation (a bar at the bottom on a phone), new-alert toasts and announcements.

import type { ComponentChildren } from 'preact';
import { useLocation } from 'preact-iso/router';
import { alertSocket, unread } from '../alerts';
import { t, tn, type Key } from '../i18n';
import { quoteSocket } from '../quotes';
import type { Connection } from '../socket';
import { Announcer } from './Announcer';
import { Icon, type IconName } from './Icon';
import { Toasts } from './Toasts';

const ORDER: Connection[] = ['offline', 'reconnecting', 'connecting', 'live'];

export function ConnectionState() {
  const states = [quoteSocket.state.value, alertSocket.state.value];
  // The worst of the two sockets is the app's state.
  const state = ORDER.find((s) => states.includes(s)) ?? 'live';
  return (
    <p class={`connection ${state}`} role="status" data-connection={state}>
      <span class="dot" aria-hidden="true" />
      <span class="visually-hidden">{t('conn.label', { state: '' })}</span>
      {t(`conn.${state}`)}
    </p>
  );
}

function NavLink({ href, icon, label, badge }: { href: string; icon: IconName; label: Key; badge?: string }) {
  const { path } = useLocation();
  const current = href === '/' ? path === '/' : path.startsWith(href);
  return (
    <a href={href} class="nav-link" aria-current={current ? 'page' : undefined}>
      <Icon name={icon} />
      <span class="nav-label">{t(label)}</span>
      {badge && (
        <span class="badge" data-unread={badge}>
          <span aria-hidden="true">{badge}</span>
          <span class="visually-hidden">{tn('unreadBadge', badge)}</span>
        </span>
      )}
    </a>
  );
}

export function Layout({ children }: { children: ComponentChildren }) {
  const { count, more } = unread.value;
  const badge = count > 0 ? `${count}${more ? '+' : ''}` : undefined;
  return (
    <div class="app">
      <a class="skip-link" href="#main">
        {t('skip')}
      </a>
      <header class="topbar">
        <a class="brand" href="/">
          <img src="/icon.svg" alt="" width="28" height="28" />
          <span>{t('appName')}</span>
        </a>
        <ConnectionState />
      </header>
      <nav class="mainnav" aria-label={t('nav.label')}>
        <NavLink href="/" icon="markets" label="nav.markets" />
        <NavLink href="/watchlist" icon="watchlist" label="nav.watchlist" />
        <NavLink href="/rules" icon="rules" label="nav.rules" />
        <NavLink href="/alerts" icon="alerts" label="nav.alerts" badge={badge} />
        <NavLink href="/settings" icon="settings" label="nav.settings" />
      </nav>
      <main id="main" tabIndex={-1}>
        {children}
      </main>
      <Toasts />
      <Announcer />
    </div>
  );
}
