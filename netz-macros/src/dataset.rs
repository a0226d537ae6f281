//! `#[dataset]`: parse -> check -> expand.

use crate::common::{crate_path, is_attr, parse_args_and_flags, string_arg, Errors};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::punctuated::Punctuated;
use syn::{Fields, ItemStruct, Lit, Token};

/// The maximum number of fields of a dataset (the core's `MAX_DATASET_FIELDS`).
const MAX_FIELDS: usize = 64;
/// The widest quantized field (the core's `MAX_QUANTIZED_BITS`).
const MAX_BITS: u64 = 32;

struct Field {
    ident: syn::Ident,
    ty: syn::Type,
    /// The `#[revision(n)]` marker on this field, as written.
    marker: Option<Lit>,
    /// The `#[quantize(...)]` attribute on this field.
    quantize: Option<Quantize>,
}

/// A parsed `#[quantize(min = .., max = .., bits = ..)]`, each value with
/// the tokens it was written as.
struct Quantize {
    attr: syn::Attribute,
    min: Option<(f64, syn::Expr)>,
    max: Option<(f64, syn::Expr)>,
    bits: Option<(u64, syn::Expr)>,
}

/// What a valid `#[quantize]` says.
#[derive(Clone, Copy)]
struct Quant {
    min: f64,
    max: f64,
    bits: u8,
    f64: bool,
}

/// The parsed `#[dataset]` item: the user's tokens, helper attributes removed.
struct Model {
    item: ItemStruct,
    krate: syn::Path,
    name: String,
    /// `#[dataset(revision = n)]`: a marker before the first field.
    first_marker: Option<Lit>,
    /// `#[dataset(latest)]`: a latest-state dataset.
    latest: bool,
    fields: Vec<Field>,
}

/// Expands `#[dataset(...)] struct ...`: parse, check, expand.
pub fn expand(args: TokenStream, item: ItemStruct) -> TokenStream {
    let mut errors = Errors::default();
    let model = parse(args, item, &mut errors);
    let revisions = check(&model, &mut errors);
    let quants = check_quantize(&model, &mut errors);
    let code = generate(&model, &revisions, &quants);
    let errors = errors.into_compile_errors();
    quote! { #code #errors }
}

/// Parses the arguments and the struct; strips the `#[revision]` markers.
fn parse(args: TokenStream, mut item: ItemStruct, errors: &mut Errors) -> Model {
    let (args, flags) = parse_args_and_flags(
        args,
        "dataset",
        &["revision", "name", "crate"],
        &["latest"],
        errors,
    );
    let latest = !flags.is_empty();
    let mut krate = None;
    let mut name = item.ident.to_string();
    let mut first_marker = None;
    for (key, value) in &args {
        match key.to_string().as_str() {
            "crate" => krate = Some(value.clone()),
            "name" => name = string_arg(value, "name", errors).unwrap_or(name),
            _ => first_marker = Some(value.clone()),
        }
    }
    let krate = crate_path(krate.as_ref(), errors);
    let mut fields = Vec::new();
    if let Fields::Named(named) = &mut item.fields {
        for field in named.named.iter_mut() {
            let mut marker = None;
            let mut quantize: Option<Quantize> = None;
            let mut kept = Vec::new();
            for attr in std::mem::take(&mut field.attrs) {
                if is_attr(&attr, "quantize") {
                    if quantize.is_some() {
                        errors.at(
                            &attr,
                            "a field takes one `#[quantize(...)]`; remove this one",
                        );
                        continue;
                    }
                    quantize = Some(parse_quantize(attr, errors));
                    continue;
                }
                if !is_attr(&attr, "revision") {
                    kept.push(attr);
                    continue;
                }
                if marker.is_some() {
                    errors.at(
                        &attr,
                        "a field takes one `#[revision(n)]` marker; remove this one",
                    );
                    continue;
                }
                let lit = match &attr.meta {
                    syn::Meta::List(list) => list.parse_args::<Lit>().ok(),
                    syn::Meta::NameValue(nv) => match &nv.value {
                        syn::Expr::Lit(l) => Some(l.lit.clone()),
                        _ => None,
                    },
                    syn::Meta::Path(_) => None,
                };
                match lit {
                    Some(lit) => marker = Some(lit),
                    None => errors.at(
                        &attr,
                        "write the marker as `#[revision(n)]` with n in 1..=255",
                    ),
                }
            }
            field.attrs = kept;
            if let Some(ident) = &field.ident {
                fields.push(Field {
                    ident: ident.clone(),
                    ty: field.ty.clone(),
                    marker,
                    quantize,
                });
            }
        }
    }
    Model {
        item,
        krate,
        name,
        first_marker,
        latest,
        fields,
    }
}

/// Parses `#[quantize(min = .., max = .., bits = ..)]`, reporting unknown,
/// duplicated and malformed arguments.
fn parse_quantize(attr: syn::Attribute, errors: &mut Errors) -> Quantize {
    let mut q = Quantize {
        attr: attr.clone(),
        min: None,
        max: None,
        bits: None,
    };
    const HOW: &str = "write `#[quantize(min = -100.0, max = 100.0, bits = 16)]`";
    let metas = match &attr.meta {
        syn::Meta::List(_) => {
            match attr.parse_args_with(Punctuated::<syn::Meta, Token![,]>::parse_terminated) {
                Ok(m) => m,
                Err(e) => {
                    errors.push(syn::Error::new(
                        e.span(),
                        format!("cannot parse the arguments of `#[quantize]`: {HOW}"),
                    ));
                    return q;
                }
            }
        }
        _ => {
            errors.at(
                &attr,
                format!("`#[quantize]` needs its range and width: {HOW}"),
            );
            return q;
        }
    };
    for meta in metas {
        let syn::Meta::NameValue(nv) = &meta else {
            errors.at(&meta, format!("expected `key = value`: {HOW}"));
            continue;
        };
        let key = nv
            .path
            .get_ident()
            .map(|i| i.to_string())
            .unwrap_or_default();
        let slot_taken = match key.as_str() {
            "min" => q.min.is_some(),
            "max" => q.max.is_some(),
            "bits" => q.bits.is_some(),
            _ => {
                errors.at(
                    &nv.path,
                    format!(
                        "unknown argument `{key}` of `#[quantize]`; valid arguments are: `min`, `max`, `bits`"
                    ),
                );
                continue;
            }
        };
        if slot_taken {
            errors.at(
                &nv.path,
                format!("duplicate argument `{key}` of `#[quantize]`; give it once"),
            );
            continue;
        }
        if key == "bits" {
            match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: Lit::Int(i), ..
                }) => match i.base10_parse::<u64>() {
                    Ok(v) => q.bits = Some((v, nv.value.clone())),
                    Err(_) => errors.at(&nv.value, "`bits` is an integer in 1..=32"),
                },
                other => errors.at(other, "`bits` is an integer in 1..=32"),
            }
            continue;
        }
        match number(&nv.value) {
            Some(v) => {
                let slot = if key == "min" { &mut q.min } else { &mut q.max };
                *slot = Some((v, nv.value.clone()));
            }
            None => errors.at(
                &nv.value,
                format!("`{key}` is a number such as `-100.0` or `100`"),
            ),
        }
    }
    q
}

/// The value of a (possibly negated) integer or float literal.
fn number(e: &syn::Expr) -> Option<f64> {
    match e {
        syn::Expr::Lit(syn::ExprLit { lit, .. }) => match lit {
            Lit::Float(f) => f.base10_parse::<f64>().ok(),
            Lit::Int(i) => i.base10_parse::<i64>().ok().map(|v| v as f64),
            _ => None,
        },
        syn::Expr::Unary(syn::ExprUnary {
            op: syn::UnOp::Neg(_),
            expr,
            ..
        }) => number(expr).map(|v| -v),
        syn::Expr::Group(g) => number(&g.expr),
        syn::Expr::Paren(p) => number(&p.expr),
        _ => None,
    }
}

/// A quantized field is an `f32` or `f64` with a finite range `min < max`
/// and a width of 1 to 32 bits. Returns each field's quantization (`None`
/// for fields without one, or with errors).
fn check_quantize(model: &Model, errors: &mut Errors) -> Vec<Option<Quant>> {
    model
        .fields
        .iter()
        .map(|field| {
            let q = field.quantize.as_ref()?;
            let float = match &field.ty {
                syn::Type::Path(p) if p.qself.is_none() => {
                    p.path.segments.last().and_then(|s| match s.ident.to_string().as_str() {
                        "f32" => Some(false),
                        "f64" => Some(true),
                        _ => None,
                    })
                }
                _ => None,
            };
            let mut ok = true;
            if float.is_none() {
                errors.at(
                    &field.ty,
                    format!(
                        "`#[quantize]` goes on an `f32` or `f64` field; `{}` is neither (quantize each coordinate of a vector as its own field)",
                        {
                            let ty = &field.ty;
                            quote!(#ty).to_string().replace(' ', "")
                        }
                    ),
                );
                ok = false;
            }
            let mut missing = Vec::new();
            if q.min.is_none() {
                missing.push("`min`");
            }
            if q.max.is_none() {
                missing.push("`max`");
            }
            if q.bits.is_none() {
                missing.push("`bits`");
            }
            if !missing.is_empty() {
                errors.at(
                    &q.attr,
                    format!(
                        "`#[quantize]` needs `min`, `max` and `bits`; missing {}",
                        missing.join(", ")
                    ),
                );
                return None;
            }
            let (min, min_e) = q.min.clone()?;
            let (max, max_e) = q.max.clone()?;
            let (bits, bits_e) = q.bits.clone()?;
            if !(min.is_finite() && max.is_finite()) || min >= max {
                errors.at(
                    &max_e,
                    format!(
                        "the range of `#[quantize]` is empty: `min` ({}) must be below `max` ({})",
                        quote!(#min_e).to_string().replace(' ', ""),
                        quote!(#max_e).to_string().replace(' ', "")
                    ),
                );
                ok = false;
            }
            if !(1..=MAX_BITS).contains(&bits) {
                errors.at(
                    &bits_e,
                    format!("`bits = {bits}` is out of range: a quantized field takes 1 to {MAX_BITS} bits"),
                );
                ok = false;
            }
            ok.then(|| Quant {
                min,
                max,
                bits: bits as u8,
                f64: float == Some(true),
            })
        })
        .collect()
}

/// Checks the model; returns each field's revision.
fn check(model: &Model, errors: &mut Errors) -> Vec<u8> {
    check_shape(model, errors);
    check_field_count(model, errors);
    check_reserved_names(model, errors);
    check_derive_order(model, errors);
    check_revisions(model, errors)
}

/// A dataset is a non-generic struct with named fields (or none).
fn check_shape(model: &Model, errors: &mut Errors) {
    let item = &model.item;
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        errors.at(
            &item.generics,
            "a dataset cannot be generic: declare a concrete struct (wrap generic data in a concrete field type)",
        );
    }
    if let Fields::Unnamed(u) = &item.fields {
        errors.at(
            u,
            "a dataset needs named fields (`struct Name { field: Type, ... }`): field names identify the fields",
        );
    }
}

/// A dataset has at most 64 fields (field ids fit the update's bit mask).
fn check_field_count(model: &Model, errors: &mut Errors) {
    if let Some(field) = model.fields.get(MAX_FIELDS) {
        errors.at(
            &field.ident,
            format!("a dataset has at most {MAX_FIELDS} fields; this is field number {}: split the data into two datasets", MAX_FIELDS + 1),
        );
    }
}

/// Whether the struct carries no `#[derive(...)]`: derives written above
/// `#[dataset]` have already run (on the struct without the hidden field)
/// and are gone from the item this macro sees.
fn derives_missing(model: &Model) -> bool {
    !model.item.attrs.iter().any(|a| is_attr(a, "derive"))
}

/// A dataset needs its derives below `#[dataset]` (at least `Default`, for
/// duplicas): above it they miss the hidden field, and rustc's own error
/// (``missing field `__netz_revision` ``) does not say what to move.
fn check_derive_order(model: &Model, errors: &mut Errors) {
    if derives_missing(model) {
        errors.at(
            &model.item.ident,
            format!(
                "`#[dataset]` sees no `#[derive(...)]` on `{0}`: write `#[dataset]` first, above the derives \
                 (`#[dataset]` then `#[derive(Default, ...)]`). Derives written above `#[dataset]` run before it, \
                 on the struct without the field it adds, and fail with ``missing field `__netz_revision` ``; \
                 a dataset needs at least `#[derive(Default)]`",
                model.item.ident
            ),
        );
    }
}

/// The hidden received-revision field's name is reserved.
fn check_reserved_names(model: &Model, errors: &mut Errors) {
    for field in &model.fields {
        if field.ident == "__netz_revision" {
            errors.at(
                &field.ident,
                "`__netz_revision` is reserved by `#[dataset]`; rename the field",
            );
        }
    }
}

/// Revision markers are integers in 1..=255, strictly increasing; a marker
/// applies to its field and the fields after it (fields before the first
/// marker are revision 0).
fn check_revisions(model: &Model, errors: &mut Errors) -> Vec<u8> {
    let mut current = 0u8;
    let mut previous: Option<u8> = None;
    if let Some(lit) = &model.first_marker {
        if let Some(r) = revision_value(lit, None, errors) {
            current = r;
            previous = Some(r);
        }
    }
    let mut revisions = Vec::new();
    for field in &model.fields {
        if let Some(lit) = &field.marker {
            if let Some(r) = revision_value(lit, previous, errors) {
                current = r;
                previous = Some(r);
            }
        }
        revisions.push(current);
    }
    revisions
}

/// Checks one revision literal: 1..=255 and greater than `previous`.
fn revision_value(lit: &Lit, previous: Option<u8>, errors: &mut Errors) -> Option<u8> {
    let Lit::Int(int) = lit else {
        errors.at(lit, "a revision is an integer in 1..=255");
        return None;
    };
    let value = match int.base10_parse::<u64>() {
        Ok(v) if (1..=255).contains(&v) => v as u8,
        _ => {
            errors.at(
                lit,
                format!("revision {int} is out of range: a revision is an integer in 1..=255 (fields before the first marker are revision 0)"),
            );
            return None;
        }
    };
    if let Some(p) = previous {
        if value <= p {
            errors.at(
                lit,
                format!("revision {value} does not increase: the previous marker is revision {p}; revision markers must strictly increase (use {})", p.saturating_add(1)),
            );
            return None;
        }
    }
    Some(value)
}

fn generate(model: &Model, revisions: &[u8], quants: &[Option<Quant>]) -> TokenStream {
    let krate = &model.krate;
    let mut item = model.item.clone();
    let vis = &item.vis;
    let ident = &item.ident;
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        // Reported in the check step; generating would only cascade.
        return quote!(#item);
    }
    if derives_missing(model) {
        // Reported in the check step. Without the hidden field, derives
        // written above `#[dataset]` compile and only that error shows.
        return quote!(#item);
    }
    let hidden: syn::Field = syn::parse_quote! {
        #[doc(hidden)]
        #vis __netz_revision: #krate::__private::ReceivedRevision
    };
    match &mut item.fields {
        Fields::Named(named) => named.named.push(hidden),
        Fields::Unit => {
            item.fields = Fields::Named(syn::parse_quote!({ #hidden }));
            item.semi_token = None;
        }
        Fields::Unnamed(_) => return quote!(#item),
    }
    let name = &model.name;
    let names: Vec<String> = model.fields.iter().map(|f| f.ident.to_string()).collect();
    let declared = revisions.last().copied().unwrap_or(0);
    let idx: Vec<usize> = (0..model.fields.len()).collect();
    let whats: Vec<String> = names.iter().map(|n| format!("{name}.{n}")).collect();
    let encodes = model.fields.iter().zip(quants).map(|(f, q)| {
        let fid = &f.ident;
        match q {
            Some(q) => {
                let (min, max, bits) = (q.min, q.max, q.bits);
                quote! {
                    #krate::__private::encode_quantized(self.#fid as f64, #min, #max, #bits, out)
                }
            }
            None => quote! { #krate::__private::encode_value(&self.#fid, out) },
        }
    });
    let decodes = model.fields.iter().zip(quants).zip(&whats).map(|((f, q), what)| {
        let fid = &f.ident;
        match q {
            Some(q) => {
                let (min, max, bits) = (q.min, q.max, q.bits);
                let cast = if q.f64 { quote!(f64) } else { quote!(f32) };
                quote! {
                    self.#fid = #krate::__private::decode_quantized(input, #min, #max, #bits, #what)? as #cast
                }
            }
            None => quote! { self.#fid = #krate::__private::decode_value(input, #what)? },
        }
    });
    let quantized: Vec<(usize, u8)> = quants
        .iter()
        .enumerate()
        .filter_map(|(i, q)| q.map(|q| (i, q.bits)))
        .collect();
    let field_bits = if quantized.is_empty() {
        quote!()
    } else {
        let qi = quantized.iter().map(|(i, _)| i);
        let qb = quantized.iter().map(|(_, b)| b);
        quote! {
            fn field_bits(&self, index: usize) -> #krate::__private::Option<u8> {
                match index {
                    #(#qi => #krate::__private::Some(#qb),)*
                    _ => #krate::__private::None,
                }
            }
        }
    };
    let delivery = if model.latest {
        quote! {
            fn delivery(&self) -> #krate::__private::Delivery {
                #krate::__private::Delivery::Latest
            }
        }
    } else {
        quote!()
    };
    let accessors = model.fields.iter().zip(revisions).map(|(f, &rev)| {
        let fname = &f.ident;
        let valid_rev = format_ident!("{}_valid_revision", fname.to_string().trim_start_matches("r#"));
        let is_valid = format_ident!("is_{}_valid", fname.to_string().trim_start_matches("r#"));
        let doc_rev = format!(
            "The revision from which field `{fname}` is valid ({rev}; NetZ `DATASET_VALID_REVISION({fname})`)."
        );
        let doc_valid = format!(
            "Whether field `{fname}` is part of the received revision (NetZ `DATASET_ISVALID({fname})`): false when the sender's build declares an older revision than {rev}."
        );
        quote! {
            #[doc = #doc_rev]
            #[allow(dead_code)]
            pub const fn #valid_rev() -> u8 { #rev }
            #[doc = #doc_valid]
            #[allow(dead_code)]
            pub fn #is_valid(&self) -> bool { #rev <= self.__netz_revision.get() }
        }
    });
    let doc_declared = format!(
        "The revision of this build's declaration of `{name}`: its highest `#[revision]` marker ({declared})."
    );
    quote! {
        #item

        impl #krate::__private::DataSet for #ident {
            fn name(&self) -> &'static str { #name }
            fn field_names(&self) -> &'static [&'static str] { &[#(#names),*] }
            fn field_revisions(&self) -> &'static [u8] { &[#(#revisions),*] }
            fn declared_revision(&self) -> u8 { #declared }
            fn encode_field(&self, index: usize, out: &mut #krate::__private::Vec<u8>) {
                match index {
                    #(#idx => #encodes,)*
                    _ => {}
                }
            }
            fn decode_field(
                &mut self,
                index: usize,
                input: &mut &[u8],
            ) -> #krate::__private::Result<(), #krate::__private::DecodeError> {
                match index {
                    #(#idx => #decodes,)*
                    _ => {}
                }
                #krate::__private::Ok(())
            }
            fn received_revision(&self) -> u8 { self.__netz_revision.get() }
            fn set_received_revision(&mut self, revision: u8) { self.__netz_revision.set(revision) }
            #delivery
            #field_bits
        }

        impl #ident {
            #[doc = #doc_declared]
            #[allow(dead_code)]
            pub const REVISION: u8 = #declared;
            /// The revision of the received dataset (NetZ `DataSet::GetRevision`);
            /// on a master, the declared revision.
            #[allow(dead_code)]
            pub fn revision(&self) -> u8 { self.__netz_revision.get() }
            #(#accessors)*
        }
    }
}
