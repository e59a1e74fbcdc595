// berth console: live updates and countdowns. htmx (from node_modules) does the swapping;
// this script only listens to /console/events (authenticated by the console's HttpOnly
// cookie, which EventSource sends like any same-origin request) and ticks the countdowns.
(function () {
  'use strict';

  function pad(n) {
    return String(n).padStart(2, '0');
  }

  // The same format as the server's first rendering (views.ts formatCountdown).
  function formatCountdown(total) {
    var days = Math.floor(total / 86400);
    var clock = [Math.floor((total % 86400) / 3600), Math.floor((total % 3600) / 60), total % 60]
      .map(pad)
      .join(':');
    return days > 0 ? days + 'd ' + clock : clock;
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll('[data-until]').forEach(function (element) {
      var until = Date.parse(element.getAttribute('data-until'));
      var text = formatCountdown(Math.max(0, Math.floor((until - now) / 1000)));
      if (element.textContent !== text) element.textContent = text;
    });
  }

  var refreshTimer;
  var refreshedAt = 0;
  // Many events arrive together (a stop is terminating then stopped, sessions with it): one
  // reload of the live region per burst, and at most one a second, so an event storm never
  // turns into a storm of API reads against the admin's rate limit.
  function changed() {
    if (refreshTimer !== undefined) return;
    var wait = Math.max(250, 1000 - (Date.now() - refreshedAt));
    refreshTimer = setTimeout(function () {
      refreshTimer = undefined;
      refreshedAt = Date.now();
      document.body.dispatchEvent(new CustomEvent('berth:changed'));
    }, wait);
  }

  function follow() {
    var indicator = document.getElementById('feed');
    if (!indicator || typeof EventSource === 'undefined') return;
    var source = new EventSource('/console/events');
    function show(state, text) {
      indicator.setAttribute('data-state', state);
      indicator.textContent = text;
    }
    source.addEventListener('ready', function () {
      show('live', 'live');
    });
    source.addEventListener('lifecycle', function (message) {
      var event = JSON.parse(message.data);
      show('live', 'live · ' + event.type);
      changed();
    });
    source.addEventListener('error', function () {
      if (source.readyState === EventSource.CLOSED) {
        // Refused (signed out, token expired): reloading the page leads to the login form.
        show('lost', 'not live: reload');
      } else {
        show('lost', 'reconnecting…');
      }
    });
  }

  document.addEventListener('DOMContentLoaded', function () {
    tick();
    setInterval(tick, 1000);
    follow();
  });
  // After a swap the new countdowns are right at once, not a second later.
  document.addEventListener('htmx:afterSwap', tick);
})();
