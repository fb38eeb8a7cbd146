// The page's theme, light or dark: loaded in <head> (not deferred), so the first paint has it.
//
// Unchosen, the page follows the system's setting (prefers-color-scheme), also when it changes. The toggle in the
// header flips what is shown; the choice is kept in localStorage ("chat.theme": "light" or "dark"), except that
// choosing the system's own theme forgets the choice: the page follows the system again. So two states are kept
// (a choice, or none) and the button is a plain two-state toggle (pressed: dark), never a click that changes nothing.
// <html data-theme="light|dark"> tells the style sheet, before the first paint (the page needs scripts anyway).
// Plain ES2017, no build step, no dependencies.
(function () {
  "use strict";

  var KEY = "chat.theme";
  var root = document.documentElement;
  var system = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;

  function systemTheme() {
    return system !== null && system.matches ? "dark" : "light";
  }

  function chosen() {
    var value = null;
    try {
      value = window.localStorage.getItem(KEY);
    } catch (err) {
      value = null; // storage refused: the system's setting
    }
    return value === "light" || value === "dark" ? value : null;
  }

  function choose(theme) {
    try {
      if (theme === systemTheme()) {
        window.localStorage.removeItem(KEY);
      } else {
        window.localStorage.setItem(KEY, theme);
      }
    } catch (err) {
      // (not kept: this page shows it until it is reloaded)
    }
    apply(theme);
  }

  function current() {
    return chosen() || systemTheme();
  }

  function apply(theme) {
    root.dataset.theme = theme;
    root.style.colorScheme = theme; // form controls and scroll bars in the same theme
    var button = document.getElementById("theme-toggle");
    if (button !== null) {
      var dark = theme === "dark";
      button.setAttribute("aria-pressed", dark ? "true" : "false");
      button.title = dark ? "Dark theme (on): switch to light" : "Dark theme (off): switch to dark";
      button.firstElementChild.textContent = dark ? "\u263e" : "\u2600"; // a moon, a sun
    }
  }

  apply(current());
  if (system !== null && system.addEventListener) {
    system.addEventListener("change", function () { apply(current()); });
  }
  window.addEventListener("storage", function (event) {
    if (event.key === KEY || event.key === null) {
      apply(current()); // chosen in another tab
    }
  });
  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("theme-toggle");
    apply(current());
    button.addEventListener("click", function () {
      choose(root.dataset.theme === "dark" ? "light" : "dark");
    });
  });
})();
