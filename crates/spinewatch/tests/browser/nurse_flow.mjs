// The nurse flow of issue 6 in a real headless Chromium (Debian's /usr/bin/chromium),
// driven by playwright-core: sign in, the worklist, the flagged case, its key image in the
// bone and the soft-tissue window, a decision (confirm L1 as grade 2) and its audit entry,
// sign out; then the case refused to a signed-out browser and to a request without cookies.
//
//   node nurse_flow.mjs BASE_URL NURSE PASSWORD SCREENSHOT_DIR
//
// Optional environment, from the test that started the server (each narrows a check):
//   SPINEWATCH_CASE_NUMBER      the case number the worklist must link to
//   SPINEWATCH_PATIENT_KEY      the patient entry (data-patient-key) that case is under
//   SPINEWATCH_KEY_IMAGE_SIZE   WxH of the PNG the pipeline wrote (bone window)
//   CHROMIUM                    the browser (default /usr/bin/chromium)
//
// Each step prints `step: ...`; the first failed check prints `FAILED at step ...: why`,
// saves `failure.png` and the page's URL and text, and exits 1. The screenshots written
// are printed as `screenshot: PATH`. The page contract is the issue's: ids and classes
// such as #login-form, #worklist, a.case-link, #key-image, #decision-form, #audit.

import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { chromium } from 'playwright-core';

const [base, nurse, password, shots] = process.argv.slice(2);
if (!base || !nurse || !password || !shots) {
  console.error('usage: node nurse_flow.mjs BASE_URL NURSE PASSWORD SCREENSHOT_DIR');
  process.exit(2);
}
const expectCase = process.env.SPINEWATCH_CASE_NUMBER || null;
const expectPatient = process.env.SPINEWATCH_PATIENT_KEY || null;
const expectSize = process.env.SPINEWATCH_KEY_IMAGE_SIZE || null;
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
/** How long one wait (a selector, a navigation, a response) may take, ms. */
const WAIT_MS = 15_000;
const VIEWPORT = { width: 1280, height: 800 };

let current = 'start';
const step = (name) => {
  current = name;
  console.log(`step: ${name}`);
};
class CheckFailed extends Error {}
const check = (ok, why) => {
  if (!ok) throw new CheckFailed(why);
};
const url = (p) => new URL(p, base).toString();
const pathOf = (u) => new URL(u, base).pathname;

/** Width and height from a PNG's signature and IHDR chunk, or a reason it is not one. */
function pngSize(bytes) {
  const signature = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (bytes.length < 33) return { error: `${bytes.length} bytes, too short for a PNG` };
  if (!signature.every((b, i) => bytes[i] === b)) {
    return { error: `no PNG signature (starts ${Buffer.from(bytes.subarray(0, 8)).toString('hex')})` };
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const chunk = Buffer.from(bytes.subarray(12, 16)).toString('latin1');
  if (view.getUint32(8) !== 13 || chunk !== 'IHDR') return { error: `first chunk is ${chunk}, not IHDR` };
  return { width: view.getUint32(16), height: view.getUint32(20) };
}

/** Waits for #key-image to finish loading, then its size as the browser and the markup say. */
async function keyImage(page) {
  await page.waitForSelector('img#key-image', { state: 'attached', timeout: WAIT_MS });
  await page
    .waitForFunction(() => document.querySelector('img#key-image')?.complete === true, null, {
      timeout: WAIT_MS,
    })
    .catch(() => {
      throw new CheckFailed(`#key-image did not finish loading within ${WAIT_MS} ms`);
    });
  return page.$eval('img#key-image', (img) => ({
    src: img.src,
    srcAttr: img.getAttribute('src'),
    complete: img.complete,
    naturalWidth: img.naturalWidth,
    naturalHeight: img.naturalHeight,
    widthAttr: img.getAttribute('width'),
    heightAttr: img.getAttribute('height'),
  }));
}

/** Checks a loaded key image in `window` against its markup and its bytes, fetched with the
 * session's cookies; returns the bytes. */
async function checkKeyImage(page, caseNumber, window) {
  const img = await keyImage(page);
  const src = new URL(img.src);
  check(
    src.pathname === `/cases/${caseNumber}/key-image` && src.searchParams.get('window') === window,
    `#key-image src is ${img.srcAttr}, expected /cases/${caseNumber}/key-image?window=${window}`,
  );
  check(img.naturalWidth > 0 && img.naturalHeight > 0, `#key-image did not decode (naturalWidth ${img.naturalWidth}): a broken image`);
  check(
    String(img.naturalWidth) === img.widthAttr && String(img.naturalHeight) === img.heightAttr,
    `#key-image decoded to ${img.naturalWidth}x${img.naturalHeight} but its width/height attributes say ${img.widthAttr}x${img.heightAttr}`,
  );
  const response = await page.request.get(img.src, { maxRedirects: 0 });
  check(response.status() === 200, `GET ${img.srcAttr} with the session answered ${response.status()}`);
  const type = response.headers()['content-type'] || '';
  check(type.startsWith('image/png'), `GET ${img.srcAttr} has Content-Type ${type || '(none)'}, not image/png`);
  const bytes = new Uint8Array(await response.body());
  const size = pngSize(bytes);
  check(!size.error, `GET ${img.srcAttr}: ${size.error}`);
  check(
    size.width === img.naturalWidth && size.height === img.naturalHeight,
    `the PNG's IHDR says ${size.width}x${size.height}, the browser decoded ${img.naturalWidth}x${img.naturalHeight}`,
  );
  if (expectSize) {
    check(`${size.width}x${size.height}` === expectSize, `the key image is ${size.width}x${size.height}, the pipeline wrote ${expectSize}`);
  }
  return bytes;
}

const browser = await chromium.launch({
  executablePath,
  // As root in a container Chromium needs --no-sandbox; --disable-gpu: no GPU here.
  args: ['--headless', '--no-sandbox', '--disable-gpu'],
  timeout: 60_000,
});
const context = await browser.newContext({ viewport: VIEWPORT });
const page = await context.newPage();
page.setDefaultTimeout(WAIT_MS);
page.setDefaultNavigationTimeout(WAIT_MS);
const serverErrors = [];
page.on('response', (r) => {
  if (r.status() >= 500) serverErrors.push(`${r.status()} ${r.request().method()} ${pathOf(r.url())}`);
});
page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
const screenshots = [];
const shoot = async (name) => {
  const file = path.resolve(shots, name);
  await page.screenshot({ path: file, fullPage: true });
  screenshots.push(file);
  console.log(`screenshot: ${file}`);
};

let failed = false;
try {
  await mkdir(shots, { recursive: true });
  console.log(`browser: Chromium ${browser.version()} (${executablePath})`);

  step('a wrong password is refused');
  await page.goto(url('/login'));
  check(pathOf(page.url()) === '/login', `GET /login ended at ${page.url()}`);
  check((await page.locator('form#login-form').count()) === 1, 'no form#login-form on /login');
  const csrf = await page.locator('form#login-form input[name=csrf]').getAttribute('value');
  check(csrf && csrf.length >= 16, `the login form's csrf value is ${JSON.stringify(csrf)}`);
  await page.fill('form#login-form input[name=name]', nurse);
  await page.fill('form#login-form input[name=password]', `${password}-wrong`);
  const [refused] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && pathOf(r.url()) === '/login'),
    page.click('button#sign-in'),
  ]);
  check(refused.status() === 401, `POST /login with a wrong password answered ${refused.status()}, expected 401`);
  await page.waitForSelector('#login-error').catch(() => {
    throw new CheckFailed('no #login-error after a wrong password');
  });

  step(`sign in as ${nurse}`);
  await page.fill('form#login-form input[name=name]', nurse);
  await page.fill('form#login-form input[name=password]', password);
  const [signedIn] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && pathOf(r.url()) === '/login'),
    page.click('button#sign-in'),
  ]);
  check(signedIn.status() === 303, `POST /login answered ${signedIn.status()}, expected 303 to /worklist`);
  await page.waitForURL((u) => u.pathname === '/worklist').catch(() => {
    throw new CheckFailed(`after signing in the browser is at ${page.url()}, not /worklist`);
  });

  step('the worklist shows the patient and the study link');
  await page.waitForSelector('table#worklist');
  const patients = page.locator('table#worklist tbody.patient[data-patient-key]');
  check((await patients.count()) >= 1, 'no tbody.patient[data-patient-key] in table#worklist');
  const patient = expectPatient
    ? page.locator(`table#worklist tbody.patient[data-patient-key="${expectPatient}"]`)
    : patients.first();
  check((await patient.count()) === 1, `no patient entry with data-patient-key="${expectPatient}" in the worklist`);
  const links = patient.locator('tr.study a.case-link');
  check((await links.count()) >= 1, 'the patient entry has no tr.study with an a.case-link');
  let link = links.first();
  if (expectCase) {
    link = patient.locator(`tr.study a.case-link[href="/cases/${expectCase}"]`);
    const hrefs = await links.evaluateAll((as) => as.map((a) => a.getAttribute('href')));
    check((await link.count()) === 1, `no link to /cases/${expectCase} under the patient; links: ${hrefs.join(', ')}`);
  }
  const href = await link.getAttribute('href');
  const match = /^\/cases\/(\d+)$/.exec(href || '');
  check(match, `a.case-link href is ${JSON.stringify(href)}, not /cases/{n}`);
  const caseNumber = match[1];
  const caseUrl = url(`/cases/${caseNumber}`);
  check((await page.locator('#counts').count()) === 1, 'no #counts on the worklist');
  check((await page.locator('form#logout-form button#sign-out').count()) === 1, 'no form#logout-form with button#sign-out on the worklist');
  await shoot('worklist.png');

  step(`open case ${caseNumber}`);
  await link.click();
  await page.waitForURL((u) => u.pathname === `/cases/${caseNumber}`).catch(() => {
    throw new CheckFailed(`the case link led to ${page.url()}, not /cases/${caseNumber}`);
  });

  step('the key image (bone window) is a real PNG of the right size');
  const bone = await checkKeyImage(page, caseNumber, 'bone');

  step('L1 is flagged');
  const l1 = page.locator('table#vertebrae tr[data-level="L1"]');
  check((await l1.count()) === 1, 'no tr[data-level="L1"] in table#vertebrae');
  const l1Flagged = await l1.evaluate(
    (tr) =>
      tr.classList.contains('flagged') ||
      tr.dataset.flagged === 'true' ||
      /flagged/i.test(tr.textContent || ''),
  );
  check(l1Flagged, `the L1 row is not marked flagged (class "flagged", data-flagged="true" or the word): ${await l1.innerText()}`);

  step('the soft-tissue window shows another image');
  const soft = page.locator('a#window-soft');
  check((await soft.count()) === 1, 'no a#window-soft');
  check((await page.locator('a#window-bone').count()) === 1, 'no a#window-bone');
  await soft.click();
  await page
    .waitForURL((u) => u.pathname === `/cases/${caseNumber}` && u.searchParams.get('window') === 'soft')
    .catch(() => {
      throw new CheckFailed(`a#window-soft led to ${page.url()}, not /cases/${caseNumber}?window=soft`);
    });
  const softBytes = await checkKeyImage(page, caseNumber, 'soft');
  check(
    Buffer.compare(Buffer.from(bone), Buffer.from(softBytes)) !== 0,
    'the soft-tissue key image has the same bytes as the bone one',
  );
  const sizes = [pngSize(bone), pngSize(softBytes)].map((s) => `${s.width}x${s.height}`);
  check(sizes[0] === sizes[1], `the bone image is ${sizes[0]}, the soft-tissue one ${sizes[1]}`);

  step('confirm L1 as grade 2');
  const form = page.locator('form#decision-form');
  check((await form.count()) === 1, 'no form#decision-form');
  const action = await form.getAttribute('action');
  check(pathOf(action || '') === `/cases/${caseNumber}/decision`, `form#decision-form posts to ${action}`);
  const formCsrf = await form.locator('input[name=csrf]').getAttribute('value');
  check(formCsrf && formCsrf.length >= 16, `the decision form's csrf value is ${JSON.stringify(formCsrf)}`);
  const options = await page.locator('select#action option').evaluateAll((os) => os.map((o) => o.value));
  for (const want of ['confirm', 'dismiss', 'already_known', 'cancer_pathway', 'not_appropriate', 'refer_radiologist']) {
    check(options.includes(want), `select#action has no option ${want} (has ${options.join(', ')})`);
  }
  await page.selectOption('select#action[name=action]', 'confirm');
  await page.selectOption('select#level[name=level]', 'L1');
  await page.selectOption('select#grade[name=grade]', '2');
  await page.fill('textarea#note[name=note]', 'Wedge of L1 confirmed on the sagittal image.');
  const [decided] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && pathOf(r.url()) === `/cases/${caseNumber}/decision`),
    page.click('button#decide'),
  ]);
  check(decided.status() === 303, `POST /cases/${caseNumber}/decision answered ${decided.status()}, expected 303`);
  await page.waitForURL((u) => u.pathname === `/cases/${caseNumber}`).catch(() => {
    throw new CheckFailed(`after the decision the browser is at ${page.url()}, not the case page`);
  });

  step('the status reads confirmed and the audit shows the decision');
  await page.waitForSelector('span#case-status');
  const status = (await page.locator('span#case-status').innerText()).trim();
  check(/confirmed/i.test(status), `#case-status reads "${status}", not confirmed`);
  const entries = await page.locator('table#audit tr.audit-entry').allInnerTexts();
  check(entries.length >= 1, 'no tr.audit-entry in table#audit');
  const entry = entries.find(
    (t) => t.includes(nurse) && /confirm/i.test(t) && /\bL1\b/.test(t) && /grade\s*2\b/i.test(t),
  );
  check(entry, `no audit entry by ${nurse} confirming L1 grade 2; entries: ${JSON.stringify(entries)}`);
  console.log(`audit entry: ${entry.replace(/\s+/g, ' ').trim()}`);
  // The key image is still there after the decision.
  await checkKeyImage(page, caseNumber, 'bone');
  await shoot('case.png');
  const cookies = (await context.cookies(base)).map((c) => `${c.name}=${c.value}`).join('; ');
  check(cookies.length > 0, 'the signed-in browser holds no cookie for the server');

  step('sign out');
  const signOut = page.locator('form#logout-form button#sign-out');
  check((await signOut.count()) === 1, 'no form#logout-form with button#sign-out on the case page');
  const [loggedOut] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && pathOf(r.url()) === '/logout'),
    signOut.click(),
  ]);
  check(loggedOut.status() < 400, `POST /logout answered ${loggedOut.status()}`);
  await page.waitForLoadState();

  step('signed out, the case URL lands on the login page');
  await page.goto(caseUrl);
  check(pathOf(page.url()) === '/login', `signed out, ${caseUrl} ended at ${page.url()}, not /login`);
  check((await page.locator('form#login-form').count()) === 1, 'the page signed out is not the login page');
  for (const selector of ['#key-image', 'table#vertebrae', 'form#decision-form', 'table#audit']) {
    check((await page.locator(selector).count()) === 0, `signed out, the page shows ${selector}`);
  }

  step('without cookies the case and its image are refused');
  const anonymous = await fetch(caseUrl, { redirect: 'manual' });
  const anonymousBody = await anonymous.text();
  check(anonymous.status !== 200 && !anonymousBody.includes('key-image'), `GET ${caseUrl} without cookies answered ${anonymous.status} with the case`);
  check(
    anonymous.status === 303 && pathOf(anonymous.headers.get('location') || '') === '/login',
    `GET ${caseUrl} without cookies answered ${anonymous.status} (Location ${anonymous.headers.get('location')}), expected 303 to /login`,
  );
  const image = await fetch(`${caseUrl}/key-image?window=bone`, { redirect: 'manual' });
  check(image.status !== 200, `GET ${caseUrl}/key-image without cookies answered 200`);
  const api = await fetch(url('/api/cases'), { redirect: 'manual' });
  check(api.status === 401, `GET /api/cases without cookies answered ${api.status}, expected 401`);
  // Signing out ended the session on the server, not only in this browser.
  const stale = await fetch(caseUrl, { redirect: 'manual', headers: { cookie: cookies } });
  const staleBody = await stale.text();
  check(stale.status !== 200 || !staleBody.includes('key-image'), `the session cookie from before signing out still opens ${caseUrl}`);

  check(serverErrors.length === 0, `the server answered with errors: ${serverErrors.join(', ')}`);
  current = 'done';
  console.log(`nurse flow passed: case ${caseNumber}, ${screenshots.length} screenshots`);
} catch (e) {
  failed = true;
  const why = e instanceof CheckFailed ? e.message : e && e.stack ? e.stack : String(e);
  console.error(`FAILED at step "${current}": ${why}`);
  if (serverErrors.length) console.error(`server errors seen: ${serverErrors.join(', ')}`);
  try {
    console.error(`page: ${page.url()}`);
    const text = await page.locator('body').innerText({ timeout: 2_000 });
    console.error(`page text (first 1500 chars):\n${text.slice(0, 1500)}`);
    const file = path.resolve(shots, 'failure.png');
    await page.screenshot({ path: file, fullPage: true, timeout: 5_000 });
    console.error(`screenshot: ${file}`);
  } catch {
    // The page itself may be what failed; the message above says why.
  }
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
