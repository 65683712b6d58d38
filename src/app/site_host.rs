//! The daemon's side of the site link: one writer, the daemon's clock and
//! its subscribers for the events the link raises.

use crate::daemon::GateHandle;
use crate::site::shared::SiteItem;
use crate::site::Host;
use crate::store::events::{EventKind, EventRecord, NewEvent};
use crate::store::Writer;

impl Host for GateHandle {
    fn writer(&self) -> Writer {
        self.core().writer()
    }

    fn event(&self, kind: EventKind) -> NewEvent {
        GateHandle::event(self, kind)
    }

    fn event_stored(&self, record: &EventRecord) {
        self.core().announce(record.clone());
    }

    fn site_shared(&self, items: &[SiteItem]) {
        let core = self.core();
        let now = core.clock.now();
        let events = crate::site::shared::to_access(items, now.wall);
        core.decider().state.fold_site(&events, now.mono);
    }
}
