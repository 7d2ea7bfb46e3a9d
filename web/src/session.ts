// Who is signed in. The session is an HttpOnly cookie the page cannot read; the server says
// whose it is.

import { signal } from '@preact/signals';
import { ApiError, get, post, whenSignedOut } from './api';
import { alertSocket, resetAlerts } from './alerts';
import { quoteSocket } from './quotes';

export interface Session {
  email: string;
  /** False when accounts are managed elsewhere (no password to change, no sign-out here). */
  accounts: boolean;
}

/** undefined while asking, null when signed out. */
export const session = signal<Session | null | undefined>(undefined);

function started(s: Session) {
  session.value = s;
  quoteSocket.start();
  alertSocket.start();
}

function ended() {
  quoteSocket.stop();
  alertSocket.stop();
  resetAlerts();
  session.value = null;
}

whenSignedOut(() => {
  if (session.value) ended();
});

/** Asks the server whose session this is; while it cannot be reached, asks again. */
export async function loadSession() {
  try {
    started(await get<Session>('/api/v1/auth/session'));
  } catch (e) {
    if (e instanceof ApiError && e.status > 0 && e.status < 500) session.value = null;
    else setTimeout(loadSession, 2_000);
  }
}

export async function signIn(email: string, password: string) {
  const s = await post<{ email: string }>('/api/v1/auth/signin', { email, password });
  started({ accounts: true, ...s });
}

export async function signUp(email: string, password: string) {
  const s = await post<{ email: string }>('/api/v1/auth/signup', { email, password });
  started({ accounts: true, ...s });
}

export async function signOut() {
  try {
    await post('/api/v1/auth/signout');
  } finally {
    ended();
  }
}
