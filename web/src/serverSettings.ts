// The person's language and time zone also live on the server, so alerts sent by Telegram,
// email or push read in the same language and time zone as the app.

import { ApiError, get, put } from './api';
import { language } from './prefs';

export async function syncServerSettings() {
  const timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  try {
    const current = await get<Record<string, unknown>>('/api/v1/settings');
    if (current.language === language.value && current.timeZone === timeZone) return;
    await put('/api/v1/settings', { ...current, language: language.value, timeZone });
  } catch (e) {
    // A server without user settings (404) keeps the language in this browser only.
    if (!(e instanceof ApiError) || e.status !== 404) throw e;
  }
}
