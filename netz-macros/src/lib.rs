//! Attribute macros of netz: `#[doclass]`, `#[dataset]`, `#[rmc]` and
//! `#[action]`. Use them through the `netz` crate (`use netz::prelude::*;`),
//! whose `__private` module the generated code refers to.
//!
//! Every macro is split into three steps: *parse* the item into a model,
//! *check* the model (collecting every error of the item, each spanned on
//! the offending token), then *expand* the model. An item with errors still
//! expands as far as it can, so one build reports all of its mistakes.

mod class;
mod common;
mod dataset;
mod methods;

use proc_macro::TokenStream;

/// Declares a replicated dataset (NetZ DDL `dataset`).
///
/// # What you write
///
/// ```ignore
/// use netz::prelude::*;
///
/// #[dataset]                       // optional: (revision = n, name = "...", crate = "...", latest)
/// #[derive(Default, Clone, Debug)] // put `#[dataset]` above the derives
/// pub struct Position {
///     pub x: f32,                  // field id 0, revision 0
///     pub y: f32,                  // field id 1, revision 0
///     #[revision(1)]               // a marker: this and the following fields are revision 1
///     pub z: f32,                  // field id 2, revision 1
/// }
///
/// #[dataset(latest)]               // a latest-state dataset
/// #[derive(Default, Clone, Debug)]
/// pub struct Place {
///     #[quantize(min = -1000.0, max = 1000.0, bits = 17)]
///     pub x: f32,                  // 17 bits on the wire instead of 32
///     #[quantize(min = -1000.0, max = 1000.0, bits = 17)]
///     pub y: f32,
/// }
/// ```
///
/// `latest` makes the dataset's updates travel as latest states (see
/// `netz::Delivery::Latest`): on the unreliable channel, never sent again
/// when lost, applied only when newer; without it they are reliable and
/// ordered. `#[quantize(min = a, max = b, bits = n)]` on an `f32` or `f64`
/// field sends it as the nearest of `2^n` evenly spaced values of `[a, b]`
/// (clamped), packed bit by bit with the quantized fields next to it; the
/// master keeps its exact value, duplicas get the quantized one.
///
/// Fields get ids in declaration order (at most 64 fields). A
/// `#[revision(n)]` marker (n in 1..=255, strictly increasing) applies to its
/// field and the fields after it; `#[dataset(revision = n)]` places a marker
/// before the first field. Field types are any serde type (postcard-encoded).
/// A receiver whose build declares fewer fields ignores the trailing ones; a
/// receiver whose build declares more keeps its own values of the fields
/// beyond the sender's revision (see `is_<field>_valid`).
///
/// # What it generates
///
/// - a hidden field `__netz_revision` holding the received revision (so a
///   struct literal needs `..Default::default()`; it compares equal and
///   hashes to nothing, so derives are unaffected). Derives must come
///   *below* `#[dataset]` to see this field: written above it they run
///   first, and `#[dataset]` (which then sees no derive) reports an error
///   that says to move it above the derives;
/// - `impl netz::DataSet for Position` (name, field names, field revisions,
///   encode/decode of each field, received revision; with `latest`,
///   `delivery()` returning `Delivery::Latest`; with quantized fields,
///   `field_bits()`);
/// - `pub const Position::REVISION: u8`: the declared revision (highest marker);
/// - `pub fn revision(&self) -> u8`: the revision of the received dataset
///   (NetZ `DataSet::GetRevision`);
/// - per field `f`: `pub const fn f_valid_revision() -> u8`
///   (`DATASET_VALID_REVISION(f)`) and `pub fn is_f_valid(&self) -> bool`
///   (`DATASET_ISVALID(f)`).
///
/// # Errors
///
/// Generic or tuple structs, more than 64 fields, a revision outside
/// 1..=255 or not greater than the previous one, unknown or duplicated
/// arguments, a value given to `latest`; `#[quantize]` on a field that is
/// not `f32` or `f64`, without `min`, `max` or `bits`, with an empty range
/// or with a width outside 1..=32.
#[proc_macro_attribute]
pub fn dataset(args: TokenStream, item: TokenStream) -> TokenStream {
    match syn::parse::<syn::ItemStruct>(item.clone()) {
        Ok(s) => dataset::expand(args.into(), s).into(),
        Err(_) => misplaced(
            item,
            "`#[dataset]` goes on a struct with named fields (the dataset), or on a field of a `#[doclass]` struct",
        ),
    }
}

/// Declares a DO class: on its struct, and on the impl block of its RMCs
/// and actions.
///
/// # What you write
///
/// ```ignore
/// use netz::prelude::*;
///
/// #[doclass(classid = 102)]        // optional: classid = 100..=255, name = "...", crate = "..."
/// #[derive(Default)]               // duplicas start as `Default::default()`
/// pub struct CarDealer {
///     #[dataset] pub stock: Stock, // replicated: dataset ids in field order
///     pub local_only: u32,         // not replicated
/// }
///
/// #[doclass]                       // optional: crate = "..."
/// impl CarDealer {
///     /// An RMC: in (`T`, `&T`), in-out (`&mut T`) and out (`#[out] &mut T`) parameters.
///     #[rmc]
///     pub fn list_matches(&mut self, make: i32, #[out] cars: &mut Vec<DOHandle>) -> i32 {
///         cars.extend(self.find(make));
///         cars.len() as i32
///     }
///     /// An RMC that uses its call context (attempt count, postpone, nested calls).
///     #[rmc]
///     pub fn best_match(&mut self, call: &mut CallContext<'_>, price: i32) -> DOHandle { todo!() }
///     /// An action: no return value.
///     #[action]
///     pub fn update_list(&mut self, note: String) { /* ... */ }
///
///     /// Hooks: plain methods with these names are wired up (all optional):
///     /// `init_do`, `operation_begin(&mut self, &Operation)`, `operation_end`,
///     /// `approve_fault_recovery(&mut self) -> bool`, `new_duplica() -> Self`.
///     fn init_do(&mut self) {}
/// }
/// ```
///
/// Every `#[doclass]` struct needs one `#[doclass] impl` block (it may be
/// empty). Local calls stay plain Rust calls: `dealer.lock().list_matches(..)`.
///
/// # What it generates
///
/// On the struct:
/// - `impl netz::DoClass for CarDealer` (`CLASS_NAME`, `CLASS_ID` (`None`:
///   the next free id from 100 in registration order), the datasets, the
///   hooks, dispatch);
/// - `pub struct CarDealerProxy<'a>` (the class's `DoClass::Proxy`),
///   dereferencing to `netz::ObjectProxy<'a, CarDealer>`.
///
/// On the impl block:
/// - `METHODS`: the RMCs and actions in declaration order; the index is the
///   method id (RMCs and actions share the numbering; at most 255);
/// - dispatch: decodes the in and in-out arguments, runs the method, encodes
///   the reply;
/// - per RMC `m`: `CarDealerProxy::call_m(&mut self, ctx: &RmcContext<R>, in and
///   in-out arguments...) -> bool` (whether the call was sent), where `R` is
///   the return type, or with out / in-out parameters the tuple
///   `(return value if not (), out and in-out values in parameter order...)`
///   (a single element stands alone). In-out parameters are passed as `&T`;
///   `&str` and `&[T]` travel as `String` and `Vec<T>`;
/// - per action `a`: `CarDealerProxy::a_on_master(&mut self, args...) -> bool`
///   and `CarDealerProxy::a_on_duplicas(&mut self, args...) -> bool`.
///
/// # Errors
///
/// Class id outside 100..=255, a 256th method, unsupported parameter types
/// (`impl Trait`, trait objects, pointers, borrowed inner types), a missing
/// or by-value `self`, `async` / generic / `unsafe` methods, an action with a
/// return value or a `&mut` parameter, a method named like a generated stub,
/// an unknown or duplicated attribute argument, generic classes.
#[proc_macro_attribute]
pub fn doclass(args: TokenStream, item: TokenStream) -> TokenStream {
    match syn::parse::<syn::Item>(item.clone()) {
        Ok(syn::Item::Struct(s)) => class::expand(args.into(), s).into(),
        Ok(syn::Item::Impl(i)) => methods::expand(args.into(), i).into(),
        _ => misplaced(
            item,
            "`#[doclass]` goes on the class's struct and on its `impl` block with the `#[rmc]` and `#[action]` methods",
        ),
    }
}

/// Marks a method of a `#[doclass] impl` block as an RMC (remote method
/// call); `#[rmc(name = "...")]` overrides the name recorded in the class's
/// method table. See [`macro@doclass`] for the parameters and generated stubs.
///
/// ```ignore
/// #[doclass]
/// impl Shop {
///     #[rmc]
///     pub fn price(&self, item: &str, #[out] stock: &mut u32) -> i64 { /* ... */ }
/// }
/// // generates ShopProxy::call_price(&mut self, ctx: &RmcContext<(i64, u32)>, item: &str) -> bool
/// ```
///
/// Outside a `#[doclass] impl` block it is an error.
#[proc_macro_attribute]
pub fn rmc(_args: TokenStream, item: TokenStream) -> TokenStream {
    misplaced(
        item,
        "`#[rmc]` only works on a method inside a `#[doclass] impl Class { ... }` block: add `#[doclass]` to the impl block",
    )
}

/// Marks a method of a `#[doclass] impl` block as an action (runs on the
/// master and on duplicas, returns nothing); `#[action(name = "...")]`
/// overrides the name recorded in the class's method table. See
/// [`macro@doclass`].
///
/// ```ignore
/// #[doclass]
/// impl World {
///     #[action]
///     pub fn update_weather(&mut self, fog: bool) { /* ... */ }
/// }
/// // generates WorldProxy::update_weather_on_master(&mut self, fog: bool) -> bool
/// //       and WorldProxy::update_weather_on_duplicas(&mut self, fog: bool) -> bool
/// ```
///
/// Outside a `#[doclass] impl` block it is an error.
#[proc_macro_attribute]
pub fn action(_args: TokenStream, item: TokenStream) -> TokenStream {
    misplaced(
        item,
        "`#[action]` only works on a method inside a `#[doclass] impl Class { ... }` block: add `#[doclass]` to the impl block",
    )
}

/// The item unchanged, plus an error at the attribute.
fn misplaced(item: TokenStream, message: &str) -> TokenStream {
    let item2: proc_macro2::TokenStream = item.into();
    let err = syn::Error::new(proc_macro2::Span::call_site(), message).to_compile_error();
    quote::quote!(#err #item2).into()
}
