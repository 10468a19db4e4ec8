-- Whether the action of a data_flows row was logged: false when every flow
-- record behind it came from a flow-log format without the action field
-- (AWS custom formats may leave it out); such records count as accepted, so
-- that scope errs towards inclusion, and the decisions they cause say so.
ALTER TABLE data_flows
    ADD COLUMN IF NOT EXISTS action_logged boolean NOT NULL DEFAULT true;
