"""OpenTelemetry OTLP as a record source: the decoding of OTLP/protobuf requests (``proto``) and the
per-record mapping every OTLP encoding shares (``mapping``). The OTLP/JSON walk, which files use too,
is ``liubai.collector.logfile.otlp``; the HTTP receiver is ``liubai.api.otlp_http``."""
