"use strict";
// Signs in with a one-time link (#once=SECRET: the fragment never reaches a server log), a password or
// a token; the server answers with an HttpOnly session cookie. Then back to the board (or #desk/ID).
(function () {
  const form = document.getElementById("login");
  const error = document.getElementById("error");
  const params = new URLSearchParams(location.hash.slice(1));
  const next = params.get("next") || "";
  async function login(body) {
    const r = await fetch("/api/login", {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify(body), credentials: "same-origin"});
    if (r.ok) { location.replace("/board/" + (next ? "#" + next : "")); return; }
    const doc = await r.json().catch(() => ({error: r.statusText}));
    error.textContent = "登录失败 / sign-in failed: " + doc.error;
  }
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const token = document.getElementById("token").value.trim();
    if (token) login({token});
    else login({user: document.getElementById("user").value.trim(),
                password: document.getElementById("password").value});
  });
  if (params.get("once")) {
    const once = params.get("once");
    history.replaceState(null, "", location.pathname);  // the secret leaves the address bar at once
    login({once});
  }
})();
