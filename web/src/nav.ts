// Navigation from outside components (a notification's click, a sign-out): the router follows
// the history's popstate events.
export function navigate(url: string, replace = false) {
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  dispatchEvent(new PopStateEvent('popstate'));
}
