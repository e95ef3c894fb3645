//! The end-to-end HTTP suite (`http_suite`) against one `boxoffice serve` process per
//! scenario: ingress and engine in one process on the embedded log.

use crate::http_suite;

suite!(http_suite::Service::serve);
