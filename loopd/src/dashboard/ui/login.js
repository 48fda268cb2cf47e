'use strict';
// The token goes to POST /login as JSON (the guard refuses any other body); the answer sets
// an HttpOnly session cookie this script never sees.
document.getElementById('login').addEventListener('submit', async (event) => {
  event.preventDefault();
  const error = document.getElementById('login-error');
  error.textContent = '';
  const token = document.getElementById('token').value;
  try {
    const response = await fetch('/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ token }),
      credentials: 'same-origin',
    });
    if (response.ok) {
      location.replace('/');
      return;
    }
    const body = await response.json().catch(() => ({}));
    error.textContent = body.error || `refused (${response.status})`;
  } catch (e) {
    error.textContent = `loopd did not answer: ${e.message}`;
  }
});
