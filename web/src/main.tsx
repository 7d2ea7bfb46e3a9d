// The DonTouch Signal web app: markets, watchlist, charts and rules, alerts and settings, on the
// same origin as the services' APIs and sockets.

import { render } from 'preact';
import { useEffect } from 'preact/hooks';
import { LocationProvider, Route, Router, useLocation } from 'preact-iso/router';
import { Layout } from './components/Layout';
import { t } from './i18n';
import { Alerts } from './pages/Alerts';
import { Auth } from './pages/Auth';
import { InstrumentPage } from './pages/Instrument';
import { Markets } from './pages/Markets';
import { Rules } from './pages/Rules';
import { Settings } from './pages/Settings';
import { Snooze } from './pages/Snooze';
import { Watchlist } from './pages/Watchlist';
import { syncServerSettings } from './serverSettings';
import { loadSession, session } from './session';
import { loadWatchlist } from './watchlist';
import './styles.css';

function NotFound() {
  return (
    <div class="page">
      <h1>{t('notFound')}</h1>
      <a href="/">{t('home')}</a>
    </div>
  );
}

/** Sends a signed-out person to sign in, and back where they were going afterwards. */
function SignedOut() {
  const { path, url, route } = useLocation();
  const onAuthPage = path === '/signin' || path === '/signup';
  useEffect(() => {
    if (!onAuthPage) route(`/signin?next=${encodeURIComponent(url)}`, true);
  }, [onAuthPage, url]);
  return <Auth mode={path === '/signup' ? 'signup' : 'signin'} />;
}

function SignedIn() {
  const { path, route } = useLocation();
  useEffect(() => {
    if (path === '/signin' || path === '/signup') route('/', true);
  }, [path]);
  useEffect(() => {
    loadWatchlist().catch(() => undefined);
    syncServerSettings().catch(() => undefined);
  }, []);
  // Each page starts at its heading for screen readers and keyboard users.
  useEffect(() => {
    document.title = `${t('appName')}`;
    window.scrollTo(0, 0);
  }, [path]);
  return (
    <Layout>
      <Router>
        <Route path="/" component={Markets} />
        <Route path="/watchlist" component={Watchlist} />
        <Route path="/i/:id" component={InstrumentPage} />
        <Route path="/rules" component={Rules} />
        <Route path="/rules/:id/snooze" component={Snooze} />
        <Route path="/alerts" component={Alerts} />
        <Route path="/settings" component={Settings} />
        <Route default component={NotFound} />
      </Router>
    </Layout>
  );
}

function App() {
  const current = session.value;
  return (
    <LocationProvider>
      {current === undefined ? (
        <p class="splash" role="status">
          {t('loading')}
        </p>
      ) : current === null ? (
        <SignedOut />
      ) : (
        <SignedIn />
      )}
    </LocationProvider>
  );
}

void loadSession();
render(<App />, document.getElementById('app')!);
