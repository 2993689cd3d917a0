#!/usr/bin/env python3
"""Blink Cocoa's import of the server call history, run outside Blink on a `get_history` reply.

Used by crates/server/tests/api/blink_history.rs (issue 18, point 4). The logic is Blink
Cocoa's, reproduced step by step from AGProjects/blink-cocoa at commit
ee82c96ce78d39dc58cc9333addd86c181c6c8ed (the newest snapshot read for this port):

* HistoryManager.py, SessionHistoryReplicator.syncServerHistoryWithLocalHistory (lines
  1333-1510): what Blink does with the JSON of `settings.phtml?action=get_history&realm=…`,
  which SessionHistoryReplicator.get_last_calls (line 1233) polls every 300 s;
* HistoryManager.py, SessionHistory._get_entries (lines 345-376): the query that decides
  whether a call is already in the local history;
* util.py, sipuri_components_from_string (lines 179-231), and format_identity_to_string
  (lines 111-176) for the missed-call notification;
* SessionController.py, get_printed_duration (lines 561-572);
* ContactListModel.py, HistoryBlinkGroup.refresh_contacts (lines 1966-2036) and the
  get_history_entries of the Missed, Outgoing and Incoming Calls groups (lines 2039-2070):
  how the session history becomes the recent-calls contacts; configuration/settings.py
  lines 161-163: each group's period defaults to 7 days.

Only Blink's environment is replaced: its SQLite session and chat tables by lists (kept in a
JSON state file between runs, so that a second run sees what the first imported, as Blink's
database would), NotificationCenter and gui_notify by lists of what was posted, BlinkLogger by
a list of lines, sipsimple's SIPURI.parse by a parser of the same grammar (userinfo is
user[:password]), and the address book by an empty one. pytz is the real pytz.

Usage: history_sync.py STATE.json ACCOUNT < reply.json
Prints one JSON object: what this run imported (`imported`, `chat`, `notifications`,
`gui_notifications`), every session entry (`sessions`), the recent-calls groups (`contacts`),
and the log (`errors`, `log`). Blink prints tracebacks with print(); they go to stderr here.
"""

import contextlib
import datetime as dt
import json
import os
import re
import shlex
import sys
import traceback
from uuid import uuid1

import pytz
from pytz import timezone

# --- Blink's environment, replaced --------------------------------------------------------------

LOG = []
ERRORS = []
POSTED = []  # NotificationCenter().post_notification('AudioCallLoggedToHistory', ...)
GUI_NOTIFIED = []  # NSApp.delegate().gui_notify(title, body, subtitle)
SESSIONS = []  # the `sessions` table (SessionHistoryEntry)
CHAT = []  # the `chat_messages` table (only what the import adds)


def log_debug(text):
    LOG.append("debug: " + text)


def log_info(text):
    LOG.append("info: " + text)


def log_error(text):
    ERRORS.append(text)


def stored_time(t):
    """A timezone-aware datetime as the sessions table keeps it (UTC, SQL text)."""
    return t.astimezone(pytz.utc).strftime("%Y-%m-%d %H:%M:%S")


def get_entries(direction=None, status=None, remote_focus=None, count=12, call_id=None,
                from_tag=None, to_tag=None, remote_uris=None, hidden=None, after_date=None):
    """SessionHistory.get_entries / _get_entries: each condition only when the argument is
    truthy (`if call_id:` …, `if hidden is not None:`), newest first, `limit count`."""
    if to_tag:
        # _get_entries writes "sip_to_tag = …", a column the table does not have (it is
        # sip_totag): the query fails, the error is logged and [] returned. Not used by the sync.
        log_error("Error getting entries from sessions history table: no such column: sip_to_tag")
        return []
    rows = SESSIONS
    if call_id:
        rows = [r for r in rows if r["sip_callid"] == call_id]
    if from_tag:
        rows = [r for r in rows if r["sip_fromtag"] == from_tag]
    if direction:
        rows = [r for r in rows if r["direction"] == direction]
    if status:
        rows = [r for r in rows if r["status"] == status]
    if remote_focus:
        rows = [r for r in rows if r["remote_focus"] == remote_focus]
    if hidden is not None:
        rows = [r for r in rows if r["hidden"] == hidden]
    if after_date:
        # SQLite compares the DATETIME text with the date text ("start_time >= '2026-12-01'").
        rows = [r for r in rows if r["start_time"] >= after_date]
    if remote_uris:
        rows = [r for r in rows if r["remote_uri"] in [str(u) for u in remote_uris]]
    return sorted(rows, key=lambda r: r["start_time"], reverse=True)[:count]


def add_to_session_history(id, media_type, direction, status, failure_reason, start_time, end_time,
                           duration, local_uri, remote_uri, remote_focus, participants, call_id,
                           from_tag, to_tag, answering_machine_filename, encryption='',
                           display_name='', device_id='', remote_full_uri=''):
    """SessionControllersManager.add_to_session_history → SessionHistory.add_entry."""
    SESSIONS.append({
        "session_id": id, "media_types": media_type, "direction": direction, "status": status,
        "failure_reason": failure_reason, "start_time": stored_time(start_time),
        "end_time": stored_time(end_time), "duration": duration, "local_uri": local_uri,
        "remote_uri": remote_uri, "remote_focus": remote_focus, "participants": participants,
        "sip_callid": call_id, "sip_fromtag": from_tag, "sip_totag": to_tag,
        "am_filename": answering_machine_filename, "encryption": encryption,
        "display_name": display_name, "device_id": device_id,
        "remote_full_uri": remote_full_uri, "hidden": 0,
    })
    return True


def add_to_chat_history(id, media_type, local_uri, remote_uri, direction, cpim_from, cpim_to,
                        timestamp, message, status, skip_replication=False):
    CHAT.append({"id": id, "media_type": media_type, "local_uri": local_uri,
                 "remote_uri": remote_uri, "direction": direction, "cpim_from": cpim_from,
                 "cpim_to": cpim_to, "message": message, "status": status})


class SIPURI:
    """sipsimple.core.SIPURI.parse, for the one use the import makes of it: the grammar of a SIP
    URI (RFC 3261: scheme ":" [user [":" password] "@"] host [":" port] [params]). Like pjsip's
    parser, "sip:sip:bob@example.com" is user "sip", password "bob", host "example.com"."""

    PATTERN = re.compile(
        r"^(?P<scheme>sips?):(?:(?P<user>[^:@;?]+)(?::(?P<password>[^@]*))?@)?"
        r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(?P<port>[0-9]+))?(?P<params>[;?].*)?$",
        re.I)

    def __init__(self, user, host, port, transport):
        self.user = user
        self.host = host
        self.port = port
        self.transport = transport
        self.display_name = None

    @classmethod
    def parse(cls, text):
        m = cls.PATTERN.match(text)
        if m is None:
            raise ValueError("not a SIP URI: %s" % text)
        transport = 'udp'
        for param in (m.group("params") or "").lstrip(";").split(";"):
            if param.lower().startswith("transport="):
                transport = param.split("=", 1)[1].lower()
        port = int(m.group("port")) if m.group("port") else None
        return cls(m.group("user"), m.group("host"), port, transport)


def format_identity_to_string(identity, check_contact=False, format='aor'):
    """util.py format_identity_to_string for a SIPURI, with an empty address book
    (getFirstContactMatchingURI finds nothing)."""
    port = 5060
    display_name = identity.display_name
    user = identity.user
    host = identity.host
    transport = identity.transport
    uri = "%s@%s" % (user, host)
    if format == 'aor':
        return uri
    if identity.port is not None and identity.port != 5060:
        port = identity.port
    if port == 5060 and transport in ('udp', 'tcp'):
        address = "%s@%s" % (user, host)
    elif transport == 'udp':
        address = "%s@%s:%d" % (user, host, port)
    else:
        address = "%s@%s:%d;transport=%s" % (user, host, port, transport)
    match = re.match(r'^(?P<number>\+[1-9][0-9]\d{5,15})@(\d{1,3}\.){3}\d{1,3}$', address)
    if match is not None:
        if format == 'compact':
            return match.group('number')
        return "%s <%s>" % (display_name, match.group('number')) if display_name else match.group('number')
    if display_name:
        return display_name if format == 'compact' else "%s <%s>" % (display_name, address)
    return address


def sipuri_components_from_string(text):
    """util.py sipuri_components_from_string: (address, display_name, full_uri, fancy_uri).
    It splits a display name off with shlex, strips <>, and shortens a number@ address to the
    number; it does not remove a sip: scheme."""
    display_name = ""
    full_uri = ""
    fancy_uri = ""
    toks = shlex.split(text)
    if len(toks) == 2:
        display_name, address = toks[0], toks[1]
    elif len(toks) == 1:
        address = toks[0]
    elif len(toks) > 2:
        display_name = " ".join(toks[:-1]).strip()
        address = toks[-1]
    else:
        address = text
    address = address.strip("<>")
    full_uri = '%s <%s>' % (display_name, address) if display_name else address
    match_number_ip = re.match(r'^(?P<number>\+?[0-9]\d{5,15})@(\d{1,3}\.){3}\d{1,3}$', address)
    match_number = re.match(r'^(?P<number>(00|\+)[1-9]\d{4,14})@', address)
    match = match_number_ip or match_number
    if match is not None:
        address = match.group('number')
        if display_name and display_name != match.group('number'):
            fancy_uri = '%s <%s>' % (display_name, match.group('number'))
        else:
            fancy_uri = match.group('number')
    elif display_name:
        fancy_uri = '%s <%s>' % (display_name, address)
    else:
        fancy_uri = address
    return address, display_name, full_uri, fancy_uri


def get_printed_duration(start_time, end_time):
    """SessionController.py get_printed_duration."""
    duration = end_time - start_time
    if duration.days > 0 or duration.seconds > 0:
        duration_print = ""
        if duration.days > 0 or duration.seconds > 3600:
            duration_print += "%i hours, " % (duration.days * 24 + duration.seconds / 3600)
        seconds = duration.seconds % 3600
        duration_print += "%02i:%02i" % (seconds / 60, seconds % 60)
    else:
        duration_print = "00:00"
    return duration_print


def post_audio_call_logged(**data):
    POSTED.append(data)


def now_timestamp():
    return dt.datetime.now(dt.timezone.utc).isoformat()


# --- syncServerHistoryWithLocalHistory ----------------------------------------------------------
#
# Blink's two loops, in its order, with its conditions. Each loop is inside one
# `try: … except Exception as e: BlinkLogger().log_error("Error: %s" % e)`: an exception (a
# missing `sessionId` in the dedup query, `duration > 0` on a string in Python 3) ends the import
# of the rest of that list. Inside, a missing key of the fields read together is `continue`.

def import_server_time(call, key):
    # start_time = datetime.strptime(startTime, "%Y-%m-%d  %H:%M:%S")
    # (strptime's white space in the format matches any run of white space, so one space works)
    return dt.datetime.strptime(call[key], "%Y-%m-%d  %H:%M:%S")


def call_timezone(call):
    # try: _timezone = timezone(call['timezone'].replace('\\/', '/'))
    # except KeyError: _timezone = timezone('Europe/Amsterdam')  # default used by CDRTool app
    # (pytz.UnknownTimeZoneError is a KeyError, so an unknown name falls back too)
    try:
        return timezone(call['timezone'].replace('\\/', '/'))
    except KeyError:
        return timezone('Europe/Amsterdam')


def read_fields(call):
    """The fields each loop reads in one try (KeyError → the call is skipped)."""
    # remote_uri, display_name, full_uri, fancy_uri = sipuri_components_from_string(call['remoteParty'])
    remote_uri = sipuri_components_from_string(call['remoteParty'])[0]
    return (remote_uri, call['status'], call['duration'], call['sessionId'], call['fromTag'],
            call['toTag'], call['startTime'], call['stopTime'], call['media'])


def sync_received(account, calls):
    received_synced = 0
    if calls['received']:
        log_debug("%d received calls retrieved from call history server of %s" % (len(calls['received']), account))
        for call in calls['received']:
            direction = 'incoming'
            # local_entry = SessionHistory().get_entries(direction=direction, count=1,
            #     call_id=call['sessionId'], from_tag=call['fromTag'])
            local_entry = get_entries(direction=direction, count=1, call_id=call['sessionId'], from_tag=call['fromTag'])
            if len(local_entry):
                continue
            id = str(uuid1())
            participants = ""
            focus = "0"
            local_uri = str(account)
            try:
                remote_uri, status, duration, call_id, from_tag, to_tag, startTime, stopTime, media = read_fields(call)
            except KeyError:
                continue
            media_type = ", ".join(media) or 'audio'
            try:
                start_time = import_server_time(call, 'startTime')
            except (TypeError, ValueError):
                continue
            _timezone = call_timezone(call)
            try:
                end_time = import_server_time(call, 'stopTime')
            except (TypeError, ValueError):
                end_time = start_time
            start_time = _timezone.localize(start_time).astimezone(pytz.utc)
            end_time = _timezone.localize(end_time).astimezone(pytz.utc)

            # success = 'completed' if duration > 0 else 'missed'
            success = 'completed' if duration > 0 else 'missed'

            log_debug("Adding incoming %s call %s at %s from %s from server history" % (success, call_id, start_time, remote_uri))
            received_synced += 1
            add_to_session_history(id, media_type, direction, success, status, start_time, end_time, duration, local_uri, remote_uri, focus, participants, call_id, from_tag, to_tag, '', '')
            if 'audio' in media:
                direction = 'incoming'
                status = 'delivered'
                if success == 'missed':
                    message = '<h3>Missed Incoming Audio Call</h3>'
                    media_type = 'missed-call'
                else:
                    printed = get_printed_duration(start_time, end_time)
                    message = '<h3>Incoming Audio Call</h3>'
                    message += '<p>The call has been answered elsewhere'
                    message += '<p>Call duration: %s' % printed
                    media_type = 'audio'
                add_to_chat_history(id, media_type, local_uri, remote_uri, direction, remote_uri, local_uri, now_timestamp(), message, status, skip_replication=True)
                post_audio_call_logged(direction=direction, history_entry=False, remote_party=remote_uri, local_party=local_uri, check_contact=True, missed=bool(media_type == 'missed-call'))

            if 'audio' in call['media'] and success == 'missed':
                elapsed = end_time - start_time
                elapsed_hours = elapsed.days * 24 + elapsed.seconds / (60 * 60)
                if elapsed_hours < 48:
                    # uri = SIPURI.parse('sip:'+str(remote_uri))
                    parsed = 'sip:' + str(remote_uri)
                    try:
                        uri = SIPURI.parse(parsed)
                    except Exception:
                        pass
                    else:
                        nc_title = 'Missed Call (' + media_type + ')'
                        nc_subtitle = 'From %s' % format_identity_to_string(uri, check_contact=True, format='full')
                        nc_body = 'Missed call at %s' % start_time.strftime("%Y-%m-%d %H:%M")
                        GUI_NOTIFIED.append({"title": nc_title, "body": nc_body, "subtitle": nc_subtitle, "parsed": parsed})
    return received_synced


def sync_placed(account, calls):
    placed_synced = 0
    if calls['placed']:
        for call in calls['placed']:
            direction = 'outgoing'
            local_entry = get_entries(direction=direction, count=1, call_id=call['sessionId'], from_tag=call['fromTag'])
            if len(local_entry):
                continue
            id = str(uuid1())
            participants = ""
            focus = "0"
            local_uri = str(account)
            try:
                remote_uri, status, duration, call_id, from_tag, to_tag, startTime, stopTime, media = read_fields(call)
            except KeyError:
                continue
            media_type = ", ".join(media) or 'audio'
            try:
                start_time = import_server_time(call, 'startTime')
            except (TypeError, ValueError):
                continue
            try:
                end_time = import_server_time(call, 'stopTime')
            except (TypeError, ValueError):
                end_time = start_time
            _timezone = call_timezone(call)
            start_time = _timezone.localize(start_time).astimezone(pytz.utc)
            end_time = _timezone.localize(end_time).astimezone(pytz.utc)

            # if duration > 0:
            #     success = 'completed'
            # else:
            #     success = 'cancelled' if status == "487" else 'failed'
            if duration > 0:
                success = 'completed'
            else:
                success = 'cancelled' if status == "487" else 'failed'

            log_debug("Adding outgoing %s call %s at %s to %s from server history" % (success, call_id, start_time, remote_uri))
            placed_synced += 1
            add_to_session_history(id, media_type, direction, success, status, start_time, end_time, duration, local_uri, remote_uri, focus, participants, call_id, from_tag, to_tag, '', '')
            if 'audio' in media:
                direction = 'incoming'
                status = 'delivered'
                media_type = 'audio'
                if success == 'failed':
                    message = '<h3>Failed Outgoing Audio Call</h3>'
                    # (Blink's text: status was just set to 'delivered', so the reason shown is
                    # "delivered", not the SIP code.)
                    message += '<p>Reason: %s' % status
                elif success == 'cancelled':
                    message = '<h3>Cancelled Outgoing Audio Call</h3>'
                else:
                    printed = get_printed_duration(start_time, end_time)
                    message = '<h3>Outgoing Audio Call</h3>'
                    message += '<p>Call duration: %s' % printed
                add_to_chat_history(id, media_type, local_uri, remote_uri, direction, remote_uri, local_uri, now_timestamp(), message, status, skip_replication=True)
                post_audio_call_logged(direction='outgoing', history_entry=False, remote_party=remote_uri, local_party=local_uri, check_contact=True, missed=False)
    return placed_synced


def sync_server_history_with_local_history(account, calls):
    if calls is None:
        return
    received_synced = 0
    placed_synced = 0
    try:
        received_synced = sync_received(account, calls)
    except Exception as e:
        log_error("Error: %s" % e)
        traceback.print_exc()
    try:
        placed_synced = sync_placed(account, calls)
    except Exception as e:
        log_error("Error: %s" % e)
        traceback.print_exc()
    if placed_synced:
        log_info("%d placed calls synced from server history of %s" % (placed_synced, account))
    if received_synced:
        log_info("%d received calls synced from server history of %s" % (received_synced, account))


# --- the recent-calls groups (ContactListModel.py) ----------------------------------------------

GROUPS = {
    # MissedCallsBlinkGroup: get_entries(hidden=0, after_date=…, count=50), then type 'missed'
    # keeps result.status == 'missed'.
    'missed': dict(hidden=0, count=50),
    # OutgoingCallsBlinkGroup
    'outgoing': dict(direction='outgoing', remote_focus="0", hidden=0, count=50),
    # IncomingCallsBlinkGroup
    'incoming': dict(direction='incoming', status='completed', remote_focus="0", hidden=0, count=50),
}


def recent_contacts(days=7):
    """HistoryBlinkGroup.refresh_contacts for each group: one contact per distinct
    `result.remote_uri` (`next(c for c in self.contacts if result.remote_uri == c.uri)`)."""
    after_date = (dt.datetime.now() - dt.timedelta(days=days)).strftime("%Y-%m-%d")
    out = {}
    for kind, query in GROUPS.items():
        contacts = []
        for result in get_entries(after_date=after_date, **query):
            if result is None or result["remote_uri"] is None:
                continue
            if kind == 'missed' and result["status"] != 'missed':
                continue
            if kind == 'outgoing' and result["direction"] != 'outgoing':
                continue
            if kind == 'incoming' and result["direction"] != 'incoming':
                continue
            if any(result["remote_uri"] == c["uri"] for c in contacts):
                continue
            target_uri, name, full_uri, fancy_uri = sipuri_components_from_string(result["remote_uri"])
            contacts.append({"uri": result["remote_uri"], "name": name, "target_uri": target_uri})
        out[kind] = contacts
    return out


def main():
    if len(sys.argv) != 3:
        sys.stderr.write("usage: history_sync.py STATE.json ACCOUNT < reply.json\n")
        return 2
    state_path, account = sys.argv[1], sys.argv[2]
    if os.path.exists(state_path):
        with open(state_path) as f:
            state = json.load(f)
        SESSIONS.extend(state.get("sessions", []))
    before = len(SESSIONS)
    # connectionDidFinishLoading_: calls = json.loads(data), then the sync.
    calls = json.loads(sys.stdin.read())
    with contextlib.redirect_stdout(sys.stderr):
        sync_server_history_with_local_history(account, calls)
    with open(state_path, "w") as f:
        json.dump({"sessions": SESSIONS}, f)
    json.dump({
        "imported": SESSIONS[before:],
        "sessions": SESSIONS,
        "chat": CHAT,
        "notifications": POSTED,
        "gui_notifications": GUI_NOTIFIED,
        "contacts": recent_contacts(),
        "errors": ERRORS,
        "log": LOG,
    }, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
