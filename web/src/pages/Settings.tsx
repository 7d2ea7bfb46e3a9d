// Settings: language, theme, the colours of rises and falls, sound and system notifications,
// where alerts reach the person besides this tab (channels), and the account (password,
// sign-out).

import { useState } from 'preact/hooks';
import { post } from '../api';
import { askNotificationPermission, notificationPermission } from '../alerts';
import { announce } from '../components/Announcer';
import { ChannelSettings } from '../components/ChannelSettings';
import { FormProblem, TextField, useProblems } from '../components/Field';
import { t, type Key } from '../i18n';
import { colours, language, sound, theme, type Colours, type Language, type Theme } from '../prefs';
import { syncServerSettings } from '../serverSettings';
import { session, signOut } from '../session';

function Choice<T extends string>({
  legend,
  name,
  value,
  options,
  onChange,
}: {
  legend: string;
  name: string;
  value: T;
  options: { value: T; label: string }[];
  onChange: (value: T) => void;
}) {
  return (
    <fieldset class="choices">
      <legend>{legend}</legend>
      {options.map((option) => (
        <label class="choice" key={option.value}>
          <input type="radio" name={name} value={option.value} checked={value === option.value} onChange={() => onChange(option.value)} />
          {option.label}
        </label>
      ))}
    </fieldset>
  );
}

const PASSWORD_FIELDS = ['currentPassword', 'newPassword'] as const;

function PasswordForm() {
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [busy, setBusy] = useState(false);
  const { problems, show, clear } = useProblems(PASSWORD_FIELDS);
  const submit = async (e: Event) => {
    e.preventDefault();
    clear();
    setBusy(true);
    try {
      await post('/api/v1/auth/password', { currentPassword: current, newPassword: next });
      setCurrent('');
      setNext('');
      announce(t('password.changed'));
    } catch (error) {
      show(error);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form onSubmit={submit} noValidate class="password-form">
      <h3>{t('password.title')}</h3>
      <TextField
        id="current-password"
        type="password"
        label={t('password.current')}
        problem={problems.currentPassword}
        autoComplete="current-password"
        value={current}
        onValue={setCurrent}
      />
      <TextField
        id="new-password"
        type="password"
        label={t('password.new')}
        hint={t('auth.passwordHint')}
        problem={problems.newPassword}
        autoComplete="new-password"
        value={next}
        onValue={setNext}
      />
      <FormProblem problem={problems.form} />
      <button type="submit" disabled={busy}>
        {t('password.submit')}
      </button>
    </form>
  );
}

export function Settings() {
  const permission = notificationPermission.value;
  const account = session.value;
  const label = (key: Key) => t(key);
  return (
    <div class="page settings">
      <h1>{t('settings.title')}</h1>
      <section class="card settings-grid">
        <Choice<Language>
          legend={t('settings.language')}
          name="language"
          value={language.value}
          options={[
            { value: 'ko', label: '한국어' },
            { value: 'en', label: 'English' },
          ]}
          onChange={(value) => {
            language.value = value;
            syncServerSettings().catch(() => undefined);
          }}
        />
        <Choice<Theme>
          legend={t('settings.theme')}
          name="theme"
          value={theme.value}
          options={(['system', 'light', 'dark'] as const).map((v) => ({ value: v, label: label(`theme.${v}`) }))}
          onChange={(value) => (theme.value = value)}
        />
        <Choice<Colours>
          legend={t('settings.colours')}
          name="colours"
          value={colours.value}
          options={(['auto', 'kr', 'intl'] as const).map((v) => ({ value: v, label: label(`colours.${v}`) }))}
          onChange={(value) => (colours.value = value)}
        />
        <Choice<'on' | 'off'>
          legend={t('settings.sound')}
          name="sound"
          value={sound.value}
          options={(['on', 'off'] as const).map((v) => ({ value: v, label: label(`sound.${v}`) }))}
          onChange={(value) => (sound.value = value)}
        />
        <div class="choices">
          <h2 class="legend">{t('settings.notifications')}</h2>
          {permission === 'granted' ? (
            <p>{t('notifications.granted')}</p>
          ) : permission === 'denied' ? (
            <p>{t('alerts.notifyDenied')}</p>
          ) : permission === 'unsupported' ? (
            <p>{t('notifications.unsupported')}</p>
          ) : (
            <button type="button" onClick={askNotificationPermission}>
              {t('alerts.notifyOn')}
            </button>
          )}
        </div>
      </section>
      {account && <ChannelSettings />}
      {account && (
        <section class="card" aria-labelledby="account-title">
          <h2 id="account-title">{t('settings.account')}</h2>
          <p>{t('settings.signedInAs', { email: account.email })}</p>
          {account.accounts && <PasswordForm />}
          {account.accounts && (
            <button type="button" class="danger" onClick={() => void signOut()}>
              {t('auth.signout')}
            </button>
          )}
        </section>
      )}
    </div>
  );
}
