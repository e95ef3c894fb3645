// Boxoffice reference client: everything a seat-booking frontend does, against API v1.
//
//   search      GET /v1/cities, GET /v1/events?city=&from=&to=&q=&postal_code= (q tolerates
//               typos and answers did_you_mean)
//   seat map    GET /v1/events/{id} and /seats, then live: GET /v1/events/{id}/stream (SSE)
//   buy         POST /v1/events/{id}/holds, POST /v1/holds/{id}/payment (when a gateway is
//               configured), POST /v1/holds/{id}/confirm, DELETE /v1/holds/{id}
//   sold out    POST /v1/events/{id}/waitlist, GET /v1/waitlist/{id}?wait_seconds=N
//   demo users  POST /v1/demo/tokens (only with the development secret)
//
// No framework and no build step; ticket QR codes come from the server as SVG.
'use strict';

(function () {
  /** Where the countdown stops before the server's expiry (the server also allows a grace). */
  const COUNTDOWN_MARGIN_MS = 2000;
  /** A waitlist long-poll's length (the API allows up to 60 s). */
  const WAITLIST_POLL_SECONDS = 25;

  const $ = (id) => document.getElementById(id);
  const state = {
    user: null,
    token: null,
    eventId: null,
    event: null,
    offset: -1,
    seatButtons: new Map(), // seat id -> button
    seatStatus: new Map(), // seat id -> free|held|booked
    categories: [], // names, in the event's order: the colour index
    selected: new Set(),
    hold: null, // {hold, deadline}
    countdownTimer: null,
    waitlist: null, // {id, polling}
  };

  // ---- API calls and errors -----------------------------------------------------------

  class ApiError extends Error {
    constructor(status, body, retryAfter) {
      const error = (body && body.error) || {};
      super(error.message || `HTTP ${status}`);
      this.status = status;
      this.code = error.code || 'unknown';
      this.details = error.details || {};
      this.retryAfter = retryAfter;
    }
  }

  /** One API call. Returns {status, body, headers}; throws ApiError for 4xx/5xx. */
  async function api(method, path, body, extraHeaders) {
    const headers = Object.assign({ Accept: 'application/json' }, extraHeaders || {});
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
    let response;
    try {
      response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (failure) {
      throw new ApiError(0, { error: { code: 'network', message: String(failure) } });
    }
    let parsed = null;
    try { parsed = await response.json(); } catch (_) { /* empty or not JSON */ }
    if (!response.ok) throw new ApiError(response.status, parsed, response.headers.get('Retry-After'));
    return { status: response.status, body: parsed, headers: response.headers };
  }

  /** A sentence for every error code of the API. */
  function describe(error) {
    const details = error.details || {};
    switch (error.code) {
      case 'seats_unavailable': {
        const seats = details.seats || [];
        return `Seats taken: ${seats.join(', ')} ${seats.length === 1 ? 'was' : 'were'} just held or booked by someone else. Pick other seats.`;
      }
      case 'sold_out':
        return 'Sold out: not enough seats are free for this request. You can join the waitlist.';
      case 'limit_exceeded':
        if (details.limit === 'seats_per_order') return `Limit exceeded: at most ${details.max} seats per order.`;
        if (details.limit === 'seats_per_user') return `Limit exceeded: one buyer may have at most ${details.max} seats for this event, holds included.`;
        if (details.limit === 'waitlist_length') return 'Limit exceeded: the waitlist is full.';
        return `Limit exceeded: ${error.message}`;
      case 'sales_closed':
        return 'Sales are closed: this event is not on sale right now.';
      case 'hold_expired':
        return 'Your hold expired and its seats were released. Please pick again.';
      case 'rate_limited':
        return `Too many requests: please wait ${error.retryAfter || 'a few'} s and try again.`;
      case 'unauthorized':
        return state.token ? `Your user token was refused (${error.message}). Switch buyer again.` : 'Choose a buyer first (top right).';
      case 'forbidden':
        return `Not allowed: ${error.message}.`;
      case 'not_found':
        return `Not found: ${error.message}.`;
      case 'conflict':
        return `That did not go through: ${error.message}.`;
      case 'already_used':
        return 'This ticket was already checked in.';
      case 'bad_request':
        return `The request was refused: ${error.message}${details.field ? ` (field ${details.field})` : ''}.`;
      case 'payload_too_large':
        return 'The request was too large.';
      case 'unavailable':
        return 'The service is busy or restarting and nothing was changed. Please retry in a moment.';
      case 'network':
        return 'The server could not be reached. Check your connection and retry.';
      default:
        return `Something went wrong (${error.code}): ${error.message}`;
    }
  }

  function showMessage(kind, text, code) {
    const box = $('message');
    box.hidden = false;
    box.className = `message ${kind}`;
    box.dataset.code = code || kind;
    box.textContent = text;
  }

  function showError(error) {
    if (!(error instanceof ApiError)) throw error;
    showMessage('error', describe(error), error.code);
  }

  function clearMessage() {
    const box = $('message');
    box.hidden = true;
    box.textContent = '';
    delete box.dataset.code;
  }

  // Amounts are in the currency's minor unit (`*_cents`); the open event's currency
  // (ISO 4217, `GET /v1/events/{id}`), EUR where no event is open (the list).
  const money = (cents, currency = (state.event && state.event.currency) || 'EUR') => {
    const format = new Intl.NumberFormat('en', { style: 'currency', currency });
    return format.format(cents / 10 ** format.resolvedOptions().maximumFractionDigits);
  };
  const when = (iso) => new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  const element = (tag, className, text) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  };

  // ---- the buyer (demo user switcher) ---------------------------------------------------

  async function switchUser(user) {
    const previous = state.token;
    state.token = null;
    try {
      const answer = await api('POST', '/v1/demo/tokens', { user });
      useToken(answer.body.user, answer.body.token);
      showMessage('info', `You are now buying as ${answer.body.user}.`, 'user_switched');
    } catch (error) {
      state.token = previous;
      if (error.code === 'not_found') {
        $('token-form').hidden = false;
        showMessage('error', 'This server mints demo tokens only with the development secret. Paste a user token instead.', 'demo_tokens_off');
      } else {
        showError(error);
      }
    }
  }

  function useToken(user, token) {
    state.user = user;
    state.token = token;
    sessionStorage.setItem('boxoffice.user', JSON.stringify({ user, token }));
    const label = $('current-user');
    label.textContent = `buying as ${user}`;
    label.classList.add('signed-in');
    forgetPurchase();
  }

  /** A token's `sub`, for the label only (the server checks the signature). */
  function subjectOf(token) {
    try {
      return JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))).sub;
    } catch (_) {
      return 'pasted token';
    }
  }

  // ---- search -----------------------------------------------------------------------------

  async function startSearch() {
    $('search-view').hidden = false;
    try {
      const cities = await api('GET', '/v1/cities');
      for (const entry of cities.body.cities) {
        const option = element('option', null, `${entry.city} (${entry.country}), ${entry.events}`);
        option.value = entry.city;
        $('search-city').append(option);
      }
    } catch (error) {
      showError(error);
    }
    $('search-form').addEventListener('submit', (submit) => {
      submit.preventDefault();
      search();
    });
    $('did-you-mean-link').addEventListener('click', (click) => {
      click.preventDefault();
      $('search-q').value = $('did-you-mean-link').textContent;
      search();
    });
    search();
  }

  // Searches answer out of order (the page's first, unfiltered one can finish after the
  // buyer's own): only the newest search asked for shows its answer.
  let searchesAsked = 0;

  async function search() {
    const asked = ++searchesAsked;
    const query = new URLSearchParams({ per_page: '50', sort: 'date' });
    if ($('search-city').value) query.set('city', $('search-city').value);
    if ($('search-from').value) query.set('from', `${$('search-from').value}T00:00:00Z`);
    if ($('search-to').value) query.set('to', `${$('search-to').value}T23:59:59Z`);
    if ($('search-q').value.trim()) query.set('q', $('search-q').value.trim());
    if ($('search-postal').value.trim()) query.set('postal_code', $('search-postal').value.trim());
    try {
      const answer = await api('GET', `/v1/events?${query}`);
      // Counted answered even when dropped (the browser test waits on it).
      document.body.dataset.searchesAnswered = String(Number(document.body.dataset.searchesAnswered || 0) + 1);
      if (asked !== searchesAsked) return;
      const list = $('results');
      list.replaceChildren();
      $('did-you-mean').hidden = !answer.body.did_you_mean;
      $('did-you-mean-link').textContent = answer.body.did_you_mean || '';
      $('search-total').textContent = `${answer.body.total} event${answer.body.total === 1 ? '' : 's'}`;
      for (const event of answer.body.events) {
        const item = element('li');
        const link = element('a', 'name', event.name);
        link.href = `/events/${event.event_id}`;
        item.append(link, element('div', 'muted', `${event.venue}, ${event.city} · ${when(event.starts_at)}`),
          element('div', null, `${event.free} of ${event.capacity} free · from ${money(event.price_from_cents)} · sales ${event.sales}`));
        list.append(item);
      }
    } catch (error) {
      showError(error);
    }
  }

  // ---- the event and its live seat map ------------------------------------------------------

  async function startEvent(eventId) {
    state.eventId = eventId;
    $('event-view').hidden = false;
    try {
      const [event, seats] = await Promise.all([
        api('GET', `/v1/events/${eventId}`),
        api('GET', `/v1/events/${eventId}/seats`),
      ]);
      const offset = Math.min(Number(event.headers.get('X-Log-Offset')), Number(seats.headers.get('X-Log-Offset')));
      render(offset, event.body, event.body.sections.length ? seats.body : null);
    } catch (error) {
      showError(error);
      return;
    }
    follow(eventId);
    wirePurchase();
  }

  /** Follows the event's stream: one frame at once, then one per change. */
  function follow(eventId) {
    const live = $('live');
    const source = new EventSource(`/v1/events/${eventId}/stream`);
    source.addEventListener('open', () => {
      live.dataset.state = 'live';
      live.textContent = 'live';
    });
    source.addEventListener('error', () => {
      live.dataset.state = 'offline';
      live.textContent = 'reconnecting…';
    });
    source.addEventListener('availability', (message) => {
      const frame = JSON.parse(message.data);
      render(frame.log_offset === null ? -1 : frame.log_offset, frame.event, frame.seats || null);
      if (state.waitlist) refreshWaitlist();
    });
  }

  /** Draws (the first time) or updates the page from an event and its seat map. */
  function render(offset, event, seatMap) {
    if (offset < state.offset) return; // older than what is shown
    state.offset = offset;
    const first = state.event === null;
    state.event = event;
    if (first) drawEvent(event, seatMap);
    $('event-sales').textContent = event.status === 'canceled' ? 'canceled' : `sales ${event.sales}`;
    $('event-sales').className = `badge ${event.status === 'canceled' ? 'closed' : event.sales}`;
    drawAvailability(event);
    if (seatMap) updateSeats(seatMap);
    drawPools(event);
    const soldOut = event.free === 0 && event.status !== 'canceled';
    $('waitlist-panel').hidden = !(soldOut || state.waitlist);
  }

  function categoryIndex(name) {
    const index = state.categories.indexOf(name);
    return index < 0 ? 0 : index % 8;
  }

  function drawEvent(event, seatMap) {
    document.title = `${event.name} · Boxoffice`;
    $('event-name').textContent = event.name;
    $('event-where').textContent = `${event.venue}, ${event.city} (${event.country}) · ${when(event.starts_at)} · holds last ${Math.round(event.hold_ttl_seconds / 60)} min · at most ${event.max_seats_per_order} seats per order`;
    state.categories = event.categories.map((category) => category.name);
    const legend = $('legend');
    for (const category of event.categories) {
      const item = element('li');
      item.append(element('span', `swatch cat-${categoryIndex(category.name)}`), `${category.name} ${money(category.price_cents)}`);
      legend.append(item);
    }
    for (const [status, label] of [['held', 'held'], ['booked', 'booked']]) {
      const item = element('li');
      item.append(element('span', `swatch ${status}`), label);
      legend.append(item);
    }
    const seated = new Set();
    const map = $('seatmap');
    if (!seatMap || seatMap.sections.length === 0) {
      map.hidden = true;
    } else {
      map.append(element('div', 'stage', 'STAGE'));
      for (const section of seatMap.sections) {
        const block = element('div', 'section');
        block.append(element('div', 'section-name', section.name));
        for (const row of section.rows) {
          const line = element('div', 'row');
          line.append(element('span', 'row-label', row.label));
          for (const seat of row.seats) {
            seated.add(seat.category);
            const button = element('button', 'seat', seat.id.split('-').pop());
            button.type = 'button';
            button.dataset.seat = seat.id;
            button.dataset.category = seat.category;
            button.addEventListener('click', () => toggleSeat(seat.id));
            state.seatButtons.set(seat.id, button);
            line.append(button);
          }
          block.append(line);
        }
        map.append(block);
      }
    }
    for (const select of [$('best-category'), $('waitlist-category')]) {
      for (const category of event.categories) {
        if (select.id === 'best-category' && !seated.has(category.name)) continue;
        const option = element('option', null, category.name);
        option.value = category.name;
        select.append(option);
      }
    }
    // General admission only: the pools' own buttons are the whole choice.
    if (seated.size === 0) $('pick-panel').hidden = true;
  }

  function updateSeats(seatMap) {
    const mine = new Set(state.hold ? state.hold.hold.seats : []);
    for (const section of seatMap.sections) {
      for (const row of section.rows) {
        for (const seat of row.seats) {
          const button = state.seatButtons.get(seat.id);
          if (!button) continue;
          state.seatStatus.set(seat.id, seat.status);
          // A selected seat someone else just took stays selected, marked taken: the
          // buyer sees it, and the server's answer to a hold says which seats are gone.
          button.className = `seat cat-${categoryIndex(seat.category)} ${seat.status}`;
          button.classList.toggle('mine', mine.has(seat.id));
          button.classList.toggle('selected', state.selected.has(seat.id));
          button.dataset.status = seat.status;
          button.title = `${seat.id} · ${seat.category} · ${seat.status}${mine.has(seat.id) ? ' (yours)' : ''}`;
        }
      }
    }
    drawSelection();
  }

  function drawAvailability(event) {
    const body = $('availability').tBodies[0];
    body.replaceChildren();
    for (const entry of event.availability) {
      const row = element('tr');
      const name = element('td');
      name.append(element('span', `swatch cat-${categoryIndex(entry.category)}`), ` ${entry.category}`);
      row.append(name, element('td', null, money(entry.price_cents)), element('td', null, String(entry.free)),
        element('td', null, String(entry.held)), element('td', null, String(entry.booked)));
      row.dataset.category = entry.category;
      body.append(row);
    }
  }

  /** General-admission pools: a live counter and a quantity to hold. */
  function drawPools(event) {
    const pools = $('pools');
    for (const pool of event.general_admission) {
      const available = event.availability.find((entry) => entry.category === pool.category);
      let card = pools.querySelector(`[data-pool="${CSS.escape(pool.category)}"]`);
      if (!card) {
        card = element('div', 'pool');
        card.dataset.pool = pool.category;
        const quantity = element('input');
        quantity.type = 'number';
        quantity.min = '1';
        quantity.value = '2';
        const hold = element('button', null, 'Hold');
        hold.type = 'button';
        hold.addEventListener('click', () => placeHold({ quantity: Number(quantity.value), category: pool.category }));
        card.append(element('div', null, `${pool.category} (standing)`), element('div', 'counter'), element('div', 'muted detail'), quantity, ' ', hold);
        pools.append(card);
      }
      card.querySelector('.counter').textContent = `${available ? available.free : 0} free`;
      card.querySelector('.detail').textContent = `of ${pool.capacity} · ${available ? available.held : 0} held · ${available ? available.booked : 0} booked`;
    }
  }

  // ---- picking, holding, paying -------------------------------------------------------------

  function toggleSeat(id) {
    if (state.seatStatus.get(id) !== 'free' && !state.selected.has(id)) return;
    if (state.selected.has(id)) state.selected.delete(id);
    else state.selected.add(id);
    state.seatButtons.get(id).classList.toggle('selected', state.selected.has(id));
    drawSelection();
  }

  function drawSelection() {
    const seats = [...state.selected].map((id) => (state.seatStatus.get(id) === 'free' ? id : `${id} (just taken)`));
    $('selection').textContent = seats.length ? `Selected: ${seats.join(', ')}` : 'Click free seats on the map.';
    $('hold-button').disabled = seats.length === 0 || state.hold !== null;
  }

  function wirePurchase() {
    $('hold-button').addEventListener('click', () => placeHold({ seats: [...state.selected] }));
    $('clear-button').addEventListener('click', () => {
      state.selected.clear();
      for (const button of state.seatButtons.values()) button.classList.remove('selected');
      drawSelection();
    });
    $('best-form').addEventListener('submit', (submit) => {
      submit.preventDefault();
      placeHold({ quantity: Number($('best-quantity').value), category: $('best-category').value, together: $('best-together').checked });
    });
    $('pay-button').addEventListener('click', pay);
    $('release-button').addEventListener('click', release);
    $('waitlist-form').addEventListener('submit', (submit) => {
      submit.preventDefault();
      joinWaitlist();
    });
    $('leave-button').addEventListener('click', leaveWaitlist);
  }

  function requireBuyer() {
    if (state.token) return true;
    showMessage('error', 'Choose a buyer first (top right).', 'no_user');
    return false;
  }

  async function placeHold(request) {
    if (!requireBuyer()) return;
    if (state.hold) {
      showMessage('error', 'You already have a hold: pay for it or release it first.', 'hold_pending');
      return;
    }
    clearMessage();
    try {
      const answer = await api('POST', `/v1/events/${state.eventId}/holds`, request);
      state.selected.clear();
      startHold(answer.body, answer.headers);
      showMessage('info', `Held ${answer.body.seats.length ? answer.body.seats.join(', ') : `${answer.body.quantity} × ${answer.body.categories[0]}`}. Pay before the countdown ends.`, 'held');
    } catch (error) {
      showError(error);
      if (error.code === 'seats_unavailable') {
        for (const seat of error.details.seats || []) {
          state.selected.delete(seat);
          const button = state.seatButtons.get(seat);
          if (button) button.classList.remove('selected');
        }
        drawSelection();
      }
      if (error.code === 'sold_out') $('waitlist-panel').hidden = false;
    }
  }

  /**
   * Shows a hold and starts its countdown. The deadline is computed from the hold's own
   * length and the server's clock (its Date header), not from this machine's clock, and
   * ends COUNTDOWN_MARGIN_MS early, so the countdown never outlasts the server's hold.
   */
  function startHold(hold, headers) {
    const receivedAt = Date.now();
    const expiresAt = Date.parse(hold.expires_at);
    let remaining = expiresAt - Date.parse(hold.created_at);
    const serverNow = Date.parse(headers.get('Date') || '');
    if (!Number.isNaN(serverNow)) remaining = Math.min(remaining, expiresAt - serverNow);
    state.hold = { hold, deadline: receivedAt + remaining - COUNTDOWN_MARGIN_MS };
    $('hold-panel').hidden = false;
    $('hold-seats').textContent = hold.seats.length ? `Seats ${hold.seats.join(', ')}` : `${hold.quantity} × ${hold.categories[0]}`;
    $('hold-total').textContent = money(hold.total_cents);
    $('pay-button').disabled = false;
    $('release-button').disabled = false;
    for (const seat of hold.seats) {
      const button = state.seatButtons.get(seat);
      if (button) button.classList.add('mine');
    }
    drawSelection();
    clearInterval(state.countdownTimer);
    tick();
    state.countdownTimer = setInterval(tick, 250);
  }

  function tick() {
    if (!state.hold) return;
    const left = state.hold.deadline - Date.now();
    const countdown = $('countdown');
    if (left <= 0) {
      endHold();
      showMessage('error', 'Your hold ran out and its seats are being released. Please pick again.', 'hold_expired');
      return;
    }
    const seconds = Math.ceil(left / 1000);
    countdown.textContent = `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')}`;
    countdown.classList.toggle('late', seconds <= 30);
  }

  function endHold() {
    clearInterval(state.countdownTimer);
    state.countdownTimer = null;
    if (state.hold) {
      for (const seat of state.hold.hold.seats) {
        const button = state.seatButtons.get(seat);
        if (button) button.classList.remove('mine');
      }
    }
    state.hold = null;
    $('hold-panel').hidden = true;
    $('countdown').textContent = '--:--';
    drawSelection();
  }

  async function pay() {
    if (!state.hold) return;
    const hold = state.hold.hold;
    $('pay-button').disabled = true;
    try {
      // The hold's payment at the gateway (one per hold, however often asked). With the
      // development gateway (`payments.gateway = "test"`) it has succeeded already; with
      // Stripe a real frontend would pay it with Stripe.js and the client secret first.
      // Without a gateway the page sends a reference of its own, as a demo.
      let reference = `demo-pay-${hold.hold_id}`;
      try {
        const payment = await api('POST', `/v1/holds/${hold.hold_id}/payment`);
        reference = payment.body.payment_id;
      } catch (error) {
        if (error.details.reason !== 'payments_not_configured') throw error;
      }
      // The key makes a retry safe.
      const answer = await api('POST', `/v1/holds/${hold.hold_id}/confirm`, { payment_ref: reference },
        { 'Idempotency-Key': `confirm-${hold.hold_id}` });
      endHold();
      showTickets(answer.body);
      showMessage('info', `Paid: booking ${answer.body.booking_id}. Your tickets are below.`, 'booked');
    } catch (error) {
      if (error.code === 'hold_expired' || error.code === 'not_found') endHold();
      else $('pay-button').disabled = false;
      showError(error);
    }
  }

  async function release() {
    if (!state.hold) return;
    const hold = state.hold.hold;
    try {
      await api('DELETE', `/v1/holds/${hold.hold_id}`);
      endHold();
      showMessage('info', 'Released: the seats are free again.', 'released');
    } catch (error) {
      showError(error);
    }
  }

  function showTickets(booking) {
    $('tickets-panel').hidden = false;
    $('booking-summary').textContent = `Booking ${booking.booking_id} · ${money(booking.total_cents)} · paid with ${booking.payment_ref}`;
    const list = $('tickets');
    for (const ticket of booking.tickets) {
      const item = element('li', 'ticket');
      item.dataset.ticket = ticket.ticket_id;
      item.append(qrCanvas(booking.booking_id, ticket), element('div', null, ticket.seat || ticket.ticket_id), element('div', 'code', ticket.code));
      list.append(item);
    }
  }

  /**
   * The ticket's QR code, rendered by the server as SVG (owner only, so fetched with the
   * buyer's token: a plain <img> cannot send it), drawn into a canvas. The canvas gets
   * `data-drawn` once the image is on it.
   */
  function qrCanvas(bookingId, ticket) {
    const canvas = element('canvas', 'qr');
    canvas.width = canvas.height = 164;
    canvas.dataset.code = ticket.code;
    const path = `/v1/bookings/${encodeURIComponent(bookingId)}/tickets/${encodeURIComponent(ticket.ticket_id)}/qr.svg`;
    const headers = state.token ? { Authorization: `Bearer ${state.token}` } : {};
    fetch(path, { headers })
      .then((response) => {
        if (!response.ok) throw new Error(`QR code: HTTP ${response.status}`);
        return response.blob();
      })
      .then((blob) => new Promise((resolve, reject) => {
        const url = URL.createObjectURL(blob);
        const image = new Image();
        image.onload = () => { URL.revokeObjectURL(url); resolve(image); };
        image.onerror = () => { URL.revokeObjectURL(url); reject(new Error('QR code: not an image')); };
        image.src = url;
      }))
      .then((image) => {
        const context = canvas.getContext('2d');
        context.fillStyle = '#ffffff';
        context.fillRect(0, 0, canvas.width, canvas.height);
        context.imageSmoothingEnabled = false;
        context.drawImage(image, 0, 0, canvas.width, canvas.height);
        canvas.dataset.drawn = 'true';
      })
      .catch((error) => showMessage('error', error.message, 'qr_code'));
    return canvas;
  }

  /** A new buyer starts with a clean slate (holds and entries belong to the previous one). */
  function forgetPurchase() {
    if (state.hold) endHold();
    state.waitlist = null;
    $('waitlist-status').hidden = true;
    $('waitlist-button').disabled = false;
    $('tickets').replaceChildren();
    $('tickets-panel').hidden = true;
  }

  // ---- the waitlist -----------------------------------------------------------------------------

  async function joinWaitlist() {
    if (!requireBuyer()) return;
    const request = { quantity: Number($('waitlist-quantity').value) };
    if ($('waitlist-category').value) request.category = $('waitlist-category').value;
    try {
      const answer = await api('POST', `/v1/events/${state.eventId}/waitlist`, request);
      state.waitlist = { id: answer.body.waitlist_id, polling: false };
      $('waitlist-button').disabled = true;
      showWaitlist(answer.body);
      showMessage('info', `You joined the waitlist at position ${answer.body.position}. Keep this page open: an offer appears here.`, 'waitlisted');
      pollWaitlist(answer.body.waitlist_id);
    } catch (error) {
      showError(error);
    }
  }

  function showWaitlist(entry) {
    $('waitlist-status').hidden = false;
    $('waitlist-position').textContent = entry.status === 'waiting' ? String(entry.position) : entry.status;
  }

  /** Long-polls the entry until its status changes from waiting. */
  async function pollWaitlist(id) {
    if (!state.waitlist || state.waitlist.id !== id || state.waitlist.polling) return;
    state.waitlist.polling = true;
    try {
      while (state.waitlist && state.waitlist.id === id) {
        const answer = await api('GET', `/v1/waitlist/${id}?wait_seconds=${WAITLIST_POLL_SECONDS}`);
        if (!state.waitlist || state.waitlist.id !== id) return;
        showWaitlist(answer.body);
        if (answer.body.status !== 'waiting') {
          waitlistEnded(answer.body, answer.headers);
          return;
        }
      }
    } catch (error) {
      if (state.waitlist && state.waitlist.id === id) {
        state.waitlist.polling = false;
        showError(error);
      }
    }
  }

  /** The live stream says something changed: refresh the position without waiting. */
  async function refreshWaitlist() {
    const id = state.waitlist.id;
    try {
      const answer = await api('GET', `/v1/waitlist/${id}`);
      if (state.waitlist && state.waitlist.id === id && answer.body.status === 'waiting') showWaitlist(answer.body);
    } catch (_) { /* the long-poll reports errors */ }
  }

  function waitlistEnded(entry, headers) {
    state.waitlist = null;
    $('waitlist-button').disabled = false;
    if (entry.status === 'offered' && entry.hold) {
      $('waitlist-status').hidden = true;
      startHold(entry.hold, headers);
      showMessage('info', `Good news: seats freed up and are held for you: ${entry.hold.seats.length ? entry.hold.seats.join(', ') : `${entry.hold.quantity} × ${entry.hold.categories[0]}`}. Pay before the countdown ends.`, 'offered');
    } else if (entry.status === 'expired') {
      showMessage('error', `Your waitlist entry ended (${(entry.reason || 'expired').replace(/_/g, ' ')}).`, 'waitlist_expired');
    } else {
      showMessage('info', 'You left the waitlist.', 'waitlist_left');
    }
  }

  async function leaveWaitlist() {
    if (!state.waitlist) return;
    const id = state.waitlist.id;
    try {
      await api('DELETE', `/v1/waitlist/${id}`);
    } catch (error) {
      showError(error);
    }
  }

  // ---- start ------------------------------------------------------------------------------------

  function start() {
    $('user-form').addEventListener('submit', (submit) => {
      submit.preventDefault();
      const user = $('user-input').value.trim();
      if (user) switchUser(user);
    });
    $('token-form').addEventListener('submit', (submit) => {
      submit.preventDefault();
      const token = $('token-input').value.trim();
      if (token) {
        useToken(subjectOf(token), token);
        showMessage('info', `Using the pasted token (${state.user}).`, 'user_switched');
      }
    });
    const saved = sessionStorage.getItem('boxoffice.user');
    if (saved) {
      try {
        const { user, token } = JSON.parse(saved);
        useToken(user, token);
      } catch (_) { sessionStorage.removeItem('boxoffice.user'); }
    }
    const match = location.pathname.match(/^\/events\/([^/]+)$/);
    if (match) startEvent(decodeURIComponent(match[1]));
    else startSearch();
  }

  // The error sentences, for the browser test's table of codes (and for the curious).
  window.Boxoffice = { describe, ApiError };
  start();
})();
