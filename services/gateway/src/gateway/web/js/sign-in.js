// Signing in with a 6-digit code sent by email, and the account line in the header.

import { authHeaders, errorMessage, postJson, saveSession } from "./api.js";
import { $, setText, show } from "./dom.js";

// The address a code was sent to, while the code is being typed.
let pendingEmail = null;
let hooks = { signedIn() {}, signedOut() {} };

function showSigninError(message) {
  const box = $("signin-error");
  setText(box, message);
  show(box, Boolean(message));
}

function showEmailStep() {
  pendingEmail = null;
  show($("email-form"), true);
  show($("code-form"), false);
  $("email").focus();
}

function showCodeStep(sent) {
  pendingEmail = sent.email;
  const minutes = Math.round(sent.expires_in / 60);
  setText($("code-sent"), `We sent a 6-digit code to ${sent.email}. It is valid for ${minutes} minutes.`);
  $("code").value = "";
  show($("email-form"), false);
  show($("code-form"), true);
  $("code").focus();
}

async function askForCode(email) {
  showSigninError("");
  const { response, body } = await postJson("/api/v1/auth/email", { email });
  if (response.status === 202 && body) {
    showCodeStep(body);
    return;
  }
  showSigninError(errorMessage(response, body));
}

async function onEmailSubmit(event) {
  event.preventDefault();
  const email = $("email").value.trim();
  if (!email || !email.includes("@")) {
    showSigninError("Enter your email address.");
    return;
  }
  const button = $("email-submit");
  button.disabled = true;
  try {
    await askForCode(email);
  } catch {
    showSigninError("Could not reach the server. Check your connection and try again.");
  } finally {
    button.disabled = false;
  }
}

async function onCodeSubmit(event) {
  event.preventDefault();
  const code = $("code").value.replace(/\s+/g, "");
  if (!/^[0-9]{6}$/.test(code)) {
    showSigninError("The code has 6 digits.");
    return;
  }
  const button = $("code-submit");
  button.disabled = true;
  try {
    const { response, body } = await postJson("/api/v1/auth/verify", { email: pendingEmail, code });
    if (response.ok && body) {
      saveSession({ token: body.token, email: body.email });
      showSigninError("");
      hooks.signedIn();
      return;
    }
    showSigninError(errorMessage(response, body));
  } catch {
    showSigninError("Could not reach the server. Check your connection and try again.");
  } finally {
    button.disabled = false;
  }
}

async function signOut() {
  const headers = authHeaders();
  hooks.signedOut();
  try {
    // Revokes the token on the server too; the page has forgotten it already.
    await fetch("/api/v1/auth/logout", { method: "POST", headers });
  } catch {
    // Offline: the token expires on its own.
  }
}

// The sign-in card, with a message (why the user has to sign in again), or none.
export function showSignin(message = "") {
  show($("account"), false);
  show($("signin"), true);
  showEmailStep();
  showSigninError(message);
}

// The header's "Signed in as …" line, the sign-in card hidden.
export function showAccount(email) {
  show($("signin"), false);
  setText($("account-email"), email);
  show($("account"), true);
}

// hooks.signedIn(): a code was accepted; hooks.signedOut(): the user pressed "Sign out".
export function initSignIn(given) {
  hooks = given;
  $("email-form").addEventListener("submit", onEmailSubmit);
  $("code-form").addEventListener("submit", onCodeSubmit);
  $("code-resend").addEventListener("click", () => pendingEmail && askForCode(pendingEmail));
  $("code-other-email").addEventListener("click", showEmailStep);
  $("sign-out").addEventListener("click", signOut);
}
