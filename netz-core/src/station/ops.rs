//! Running operations through the pipeline.

use super::*;

impl Station {
    pub(super) fn make_op(
        &self,
        detail: OperationDetail,
        origin: StationId,
        target: StationId,
        handle: Option<DOHandle>,
    ) -> Operation {
        let mut op = Operation::new(detail, origin, target, self.membership.id);
        op.origin_type = self.process_type_of(origin);
        op.target_type = self.process_type_of(target);
        if let Some(h) = handle {
            op.handle = Some(h);
            if let Some(c) = self.registry.entry(h.class_id()) {
                op.class_name = Some(c.name);
                op.class_type = Some(c.type_id);
            }
        }
        op
    }

    /// Runs one operation through the pipeline; `None` when it was rejected.
    pub(super) fn run_op(
        &mut self,
        mut op: Operation,
        cell: Option<Arc<dyn ErasedCell>>,
        datasets: bool,
        body: impl FnOnce(&mut Station, &mut Operation),
    ) -> Option<Operation> {
        if !self.hooks.is_trusted(op.origin, self.membership.id)
            && !self.hooks.check(&op, &self.store)
        {
            debug!(station = %self.membership.id, op = op.class_name(), origin = %op.origin, "operation rejected");
            self.hooks.rejected(&op);
            self.stats.operations_rejected += 1;
            self.events.push_back(Event::OperationRejected {
                kind: op.class_name(),
                origin: op.origin,
            });
            return None;
        }
        self.hooks.trace(&op);
        self.hooks.run_callbacks(&mut op, true);
        object_hooks(cell.as_ref(), datasets, &op, true);
        body(self, &mut op);
        object_hooks(cell.as_ref(), datasets, &op, false);
        self.hooks.run_callbacks(&mut op, false);
        Some(op)
    }
}

/// Runs `OperationBegin` (or `OperationEnd`) on the object's datasets, then
/// on the object itself (14.3.1).
pub(super) fn object_hooks(
    cell: Option<&Arc<dyn ErasedCell>>,
    datasets: bool,
    op: &Operation,
    begin: bool,
) {
    let Some(c) = cell else { return };
    c.with_dyn(&mut |o| {
        if datasets {
            for i in 0..o.dataset_count() {
                if let Some(d) = o.dataset_mut(i) {
                    if begin {
                        d.operation_begin(op);
                    } else {
                        d.operation_end(op);
                    }
                }
            }
        }
        if begin {
            o.operation_begin(op);
        } else {
            o.operation_end(op);
        }
    });
}

impl crate::pipeline::StoreAccess for Store {
    fn entry(&self, handle: DOHandle) -> Option<(Arc<dyn ErasedCell>, StationId)> {
        self.entries
            .get(&handle)
            .map(|e| (e.cell.clone(), e.master))
    }

    fn of_type(&self, class: TypeId) -> Vec<(DOHandle, Arc<dyn ErasedCell>)> {
        self.entries
            .iter()
            .filter(|(_, e)| e.type_id == class)
            .map(|(h, e)| (*h, e.cell.clone()))
            .collect()
    }
}

impl Station {
    /// Read access to the local store (objects of a running method left out).
    pub(super) fn store_view(&self) -> crate::pipeline::StoreView<'_> {
        crate::pipeline::StoreView::new(&self.store, &self.hooks.busy)
    }
}

impl Station {
    /// Reports `ev` (ObjectAdded, ObjectRemoved, MasterChanged) unless it
    /// concerns a core object and the configuration leaves those out.
    pub(super) fn object_event(&mut self, ev: Event) {
        let handle = match &ev {
            Event::ObjectAdded { handle, .. } | Event::MasterChanged { handle, .. } => *handle,
            Event::ObjectRemoved(h) => *h,
            _ => {
                self.events.push_back(ev);
                return;
            }
        };
        if handle.class_id().is_user() || self.cfg.core_object_events {
            self.events.push_back(ev);
        }
    }
}
