//! The daemon's side of the site task (`site::Host`): the registry stores its
//! gates' events on the process's one writer and announces them like the
//! events written here, so the console's live page shows the whole site.

use super::GateHandle;
use crate::store::events::EventRecord;
use crate::store::Writer;

impl crate::site::Host for GateHandle {
    fn writer(&self) -> Writer {
        self.shared.core.writer()
    }

    fn announce(&self, record: &EventRecord) {
        self.shared.core.announce(record.clone());
    }
}
