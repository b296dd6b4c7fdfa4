// Product Videos web client: sign in with a code sent by email, upload a photo, then
// watch the job live over the notifier's WebSocket; list my earlier videos. Plain ES
// modules, no build step: one module per screen, wired together here.

import { currentSession, forget, loadConfig, loadSession, remember, remembered, saveSession } from "./api.js";
import { initCreate, resetForm, showCreate } from "./create.js";
import { closeJob, initJob, isWatching, resume, startWatching, stopWatching } from "./job.js";
import { hideMyJobs, initMyJobs, loadMyJobs } from "./my-jobs.js";
import { initSignIn, showAccount, showSignin } from "./sign-in.js";
import { $ } from "./dom.js";

const SESSION_ENDED = "Your session has ended; please sign in again.";

function signedIn() {
  showAccount(currentSession().email);
  if (!isWatching()) showCreate(true);
  loadMyJobs();
}

function signedOut(message = "") {
  stopWatching();
  forget();
  saveSession(null);
  closeJob();
  showCreate(false);
  hideMyJobs();
  showSignin(message);
}

function watch(job, view) {
  remember(job);
  showCreate(false);
  startWatching(job, view);
}

function newJob() {
  forget();
  closeJob();
  showCreate(Boolean(currentSession()));
  resetForm({ again: true });
}

async function main() {
  await loadConfig();
  initCreate({
    created(job, view) {
      watch(job, view);
      loadMyJobs();
    },
    sessionEnded: () => signedOut(SESSION_ENDED),
  });
  initJob({ finished: () => loadMyJobs(), newJob });
  initMyJobs({
    open(job, view) {
      watch(job, view);
      $("watch").scrollIntoView?.({ block: "start", behavior: "smooth" });
    },
    sessionEnded: () => signedOut(SESSION_ENDED),
  });
  initSignIn({ signedIn, signedOut: () => signedOut() });

  if (loadSession()) signedIn();
  else showSignin();

  // A job shared by its link token, or the last one watched, opens without signing in.
  const saved = remembered();
  if (saved) {
    showCreate(false);
    if (!(await resume(saved))) showCreate(Boolean(currentSession()));
  }
}

main();
