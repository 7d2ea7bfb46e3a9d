// Sign in and sign up: email and password, and the server's word on what is wrong with them.

import { useState } from 'preact/hooks';
import { useLocation } from 'preact-iso/router';
import { FormProblem, TextField, useProblems } from '../components/Field';
import { t } from '../i18n';
import { signIn, signUp } from '../session';

const FIELDS = ['email', 'password'] as const;

export function Auth({ mode }: { mode: 'signin' | 'signup' }) {
  const { route, query } = useLocation();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const { problems, show, clear } = useProblems(FIELDS);
  const signup = mode === 'signup';

  const submit = async (e: Event) => {
    e.preventDefault();
    clear();
    setBusy(true);
    try {
      await (signup ? signUp : signIn)(email.trim(), password);
      const next = query.next;
      route(next && next.startsWith('/') && !next.startsWith('//') ? next : '/', true);
    } catch (error) {
      show(error);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main class="auth" id="main">
      <div class="auth-card">
        <p class="brand auth-brand">
          <img src="/icon.svg" alt="" width="36" height="36" />
          <span>{t('appName')}</span>
        </p>
        <p class="tagline">{t('auth.tagline')}</p>
        <h1>{signup ? t('auth.signup') : t('auth.signin')}</h1>
        <form onSubmit={submit} noValidate>
          <TextField
            id="email"
            name="email"
            type="email"
            label={t('auth.email')}
            problem={problems.email}
            autoComplete="email"
            value={email}
            onValue={setEmail}
          />
          <TextField
            id="password"
            name="password"
            type="password"
            label={t('auth.password')}
            hint={signup ? t('auth.passwordHint') : undefined}
            problem={problems.password}
            autoComplete={signup ? 'new-password' : 'current-password'}
            value={password}
            onValue={setPassword}
          />
          <FormProblem problem={problems.form} />
          <button type="submit" class="primary wide" disabled={busy}>
            {signup ? t('auth.signup') : t('auth.signin')}
          </button>
        </form>
        <p class="switch">
          {signup ? t('auth.haveAccount') : t('auth.noAccount')}{' '}
          <a href={signup ? '/signin' : '/signup'}>{signup ? t('auth.signin') : t('auth.signup')}</a>
        </p>
      </div>
    </main>
  );
}
