"""The record's storage: engine and sessions (`db`), tables (`models`),
column types (`columns`) and the schema's migrations (`migrate`)."""
