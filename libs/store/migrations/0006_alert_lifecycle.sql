-- Alerts resolve themselves: classify raises an alert when its condition
-- begins, rewords it while it lasts and resolves it when it ends. It may
-- change an alert only along that lifecycle, never an operator's part of it
-- (acknowledged_*, a false positive stays one), so it gets no UPDATE on
-- alerts: this function, run as the schema owner, is its only way to change
-- a stored alert.
--   status 'open':     insert; an alert stored already gets the new wording,
--                      and one resolved before opens again (the condition
--                      came back); a false positive is left as it is.
--   status 'resolved': an open or acknowledged alert becomes resolved by
--                      the classifier at `at`, `note` kept in its context.
-- Returns the rows changed (0 or 1).
CREATE OR REPLACE FUNCTION psg_alert_event(
    alert uuid, sev text, kind text, alert_title text, alert_description text, resource uuid,
    at timestamptz, new_status text, ctx jsonb
) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_catalog, pg_temp AS $$
DECLARE
    changed integer;
BEGIN
    IF new_status = 'resolved' THEN
        UPDATE alerts
           SET status = 'resolved', resolved_at = at, resolved_by = 'automated-classifier',
               context = COALESCE(alerts.context, '{}'::jsonb)
                         || jsonb_build_object('resolution', alert_description)
         WHERE id = alert AND status IN ('open', 'acknowledged');
    ELSIF new_status = 'open' THEN
        INSERT INTO alerts AS a (id, severity, alert_type, title, description, resource_id, triggered_at, status, context)
        VALUES (alert, sev, kind, alert_title, alert_description, resource, at, 'open', ctx)
        ON CONFLICT (id) DO UPDATE
           SET severity = EXCLUDED.severity, title = EXCLUDED.title, description = EXCLUDED.description,
               context = EXCLUDED.context,
               triggered_at = CASE WHEN a.status = 'resolved' THEN EXCLUDED.triggered_at ELSE a.triggered_at END,
               resolved_at = CASE WHEN a.status = 'resolved' THEN NULL ELSE a.resolved_at END,
               resolved_by = CASE WHEN a.status = 'resolved' THEN NULL ELSE a.resolved_by END,
               status = CASE WHEN a.status = 'resolved' THEN 'open' ELSE a.status END
         WHERE a.status <> 'false_positive';
    ELSE
        RAISE EXCEPTION 'psg_alert_event: status % is not open or resolved', new_status;
    END IF;
    GET DIAGNOSTICS changed = ROW_COUNT;
    RETURN changed;
END;
$$;
REVOKE EXECUTE ON FUNCTION psg_alert_event(uuid, text, text, text, text, uuid, timestamptz, text, jsonb) FROM PUBLIC;
