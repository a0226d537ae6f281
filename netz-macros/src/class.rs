//! `#[doclass]` on a struct: parse -> check -> expand.

use crate::common::{crate_path, is_attr, parse_args, string_arg, Errors};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{Fields, ItemStruct, Lit};

/// The parsed `#[doclass]` struct: the user's tokens, `#[dataset]` markers removed.
struct Model {
    item: ItemStruct,
    krate: syn::Path,
    name: String,
    /// `classid = n`, as written.
    class_id: Option<Lit>,
    datasets: Vec<syn::Member>,
}

/// Expands `#[doclass(...)] struct ...`: parse, check, expand.
pub fn expand(args: TokenStream, item: ItemStruct) -> TokenStream {
    let mut errors = Errors::default();
    let model = parse(args, item, &mut errors);
    let class_id = check(&model, &mut errors);
    let code = generate(&model, class_id);
    let errors = errors.into_compile_errors();
    quote! { #code #errors }
}

/// Parses the arguments and the struct; strips the `#[dataset]` markers.
fn parse(args: TokenStream, mut item: ItemStruct, errors: &mut Errors) -> Model {
    let args = parse_args(args, "doclass", &["classid", "name", "crate"], errors);
    let mut krate = None;
    let mut name = item.ident.to_string();
    let mut class_id = None;
    for (key, value) in &args {
        match key.to_string().as_str() {
            "crate" => krate = Some(value.clone()),
            "name" => name = string_arg(value, "name", errors).unwrap_or(name),
            _ => class_id = Some(value.clone()),
        }
    }
    let krate = crate_path(krate.as_ref(), errors);
    let mut datasets = Vec::new();
    match &mut item.fields {
        Fields::Named(named) => {
            for field in named.named.iter_mut() {
                let mut marked = false;
                let mut kept = Vec::new();
                for attr in std::mem::take(&mut field.attrs) {
                    if !is_attr(&attr, "dataset") {
                        kept.push(attr);
                        continue;
                    }
                    if marked {
                        errors.at(&attr, "duplicate `#[dataset]` on this field; remove one");
                        continue;
                    }
                    marked = true;
                    if !matches!(attr.meta, syn::Meta::Path(_)) {
                        errors.at(
                            &attr,
                            "`#[dataset]` on a field of a DO class takes no arguments; declare the mode and revisions on the dataset struct (`#[dataset(latest)] struct ...`, `#[revision(n)]` on its fields)",
                        );
                    }
                }
                field.attrs = kept;
                if marked {
                    if let Some(ident) = &field.ident {
                        datasets.push(syn::Member::Named(ident.clone()));
                    }
                }
            }
        }
        Fields::Unit | Fields::Unnamed(_) => {}
    }
    Model {
        item,
        krate,
        name,
        class_id,
        datasets,
    }
}

/// Checks the model; returns the explicit class id.
fn check(model: &Model, errors: &mut Errors) -> Option<u8> {
    check_shape(model, errors);
    model
        .class_id
        .as_ref()
        .and_then(|lit| check_class_id(lit, errors))
}

/// A DO class is a non-generic struct with named fields (or none), with at
/// most 255 datasets: every station creates it from its class id alone.
fn check_shape(model: &Model, errors: &mut Errors) {
    let item = &model.item;
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        errors.at(
            &item.generics,
            "a DO class cannot be generic: every station must create it from its class id alone; declare a concrete struct",
        );
    }
    if let Fields::Unnamed(u) = &item.fields {
        errors.at(
            u,
            "a DO class needs named fields (`struct Name { #[dataset] field: Data, ... }`) or none (`struct Name;`)",
        );
    }
    if model.datasets.len() > 255 {
        errors.at(&item.ident, "a DO class has at most 255 datasets");
    }
}

/// An explicit class id is in 100..=255 (lower ids are the core's).
fn check_class_id(lit: &Lit, errors: &mut Errors) -> Option<u8> {
    let Lit::Int(int) = lit else {
        errors.at(lit, "`classid` is an integer in 100..=255");
        return None;
    };
    match int.base10_parse::<u64>() {
        Ok(v) if (100..=255).contains(&v) => Some(v as u8),
        _ => {
            errors.at(
                lit,
                format!("class id {int} is out of range: user classes use 100..=255 (ids below 100 are reserved for netz); omit `classid` to get the next free id"),
            );
            None
        }
    }
}

/// The name of the remote type (typed async calls) of class `ident`.
pub fn remote_ident(ident: &syn::Ident) -> syn::Ident {
    format_ident!("{}Remote", ident.to_string().trim_start_matches("r#"))
}

/// The name of the proxy type of class `ident`.
pub fn proxy_ident(ident: &syn::Ident) -> syn::Ident {
    format_ident!("{}Proxy", ident.to_string().trim_start_matches("r#"))
}

fn generate(model: &Model, class_id: Option<u8>) -> TokenStream {
    let krate = &model.krate;
    let item = &model.item;
    let vis = &item.vis;
    let ident = &item.ident;
    let proxy = proxy_ident(ident);
    let remote = remote_ident(ident);
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        // Reported in the check step; generating would only cascade.
        return quote!(#item);
    }
    let name = &model.name;
    let class_id = match class_id {
        Some(id) => quote!(#krate::__private::Some(#id)),
        None => quote!(#krate::__private::None),
    };
    let count = model.datasets.len();
    let idx: Vec<usize> = (0..count).collect();
    let members = &model.datasets;
    let proxy_doc = format!(
        "The proxy of DO class [`{ident}`]: the generated `call_*` stubs of its RMCs and \
         `*_on_master` / `*_on_duplicas` stubs of its actions. Get one with \
         `station.object::<{ident}>(handle)` or `call.object::<{ident}>(handle)`; it \
         dereferences to the untyped [`ObjectProxy`]({}::ObjectProxy).",
        quote!(#krate).to_string().replace(' ', "")
    );
    let remote_doc = format!(
        "The typed async calls of DO class [`{ident}`] on a networked station: one method \
         per RMC (returning an `RmcCall`, awaited for `Result<R, CallError>`) and per action \
         (returning an `ActionCall`). Get one with `station.remote::<{ident}>(handle)`; \
         dropping an RMC's future cancels the call."
    );
    quote! {
        #item

        #krate::__private::if_net! {
            #[doc = #remote_doc]
            #[derive(Clone, Debug)]
            #vis struct #remote {
                inner: #krate::__private::net::RemoteObject<#ident>,
            }

            impl #krate::__private::From<#krate::__private::net::RemoteObject<#ident>> for #remote {
                fn from(inner: #krate::__private::net::RemoteObject<#ident>) -> Self {
                    #remote { inner }
                }
            }

            impl #krate::__private::Deref for #remote {
                type Target = #krate::__private::net::RemoteObject<#ident>;
                fn deref(&self) -> &Self::Target { &self.inner }
            }

            impl #krate::__private::net::RemoteClass for #ident {
                type Remote = #remote;
            }
        }

        #[doc = #proxy_doc]
        #vis struct #proxy<'a> {
            inner: #krate::__private::ObjectProxy<'a, #ident>,
        }

        impl<'a> #krate::__private::From<#krate::__private::ObjectProxy<'a, #ident>> for #proxy<'a> {
            fn from(inner: #krate::__private::ObjectProxy<'a, #ident>) -> Self {
                #proxy { inner }
            }
        }

        impl<'a> #krate::__private::Deref for #proxy<'a> {
            type Target = #krate::__private::ObjectProxy<'a, #ident>;
            fn deref(&self) -> &Self::Target { &self.inner }
        }

        impl<'a> #krate::__private::DerefMut for #proxy<'a> {
            fn deref_mut(&mut self) -> &mut Self::Target { &mut self.inner }
        }

        impl #krate::__private::DoClass for #ident {
            const CLASS_NAME: &'static str = #name;
            const CLASS_ID: #krate::__private::Option<u8> = #class_id;
            const METHODS: &'static [#krate::__private::MethodInfo] =
                <#ident as #krate::__private::ClassMethods>::METHODS;
            type Proxy<'a> = #proxy<'a>;

            fn new_duplica() -> Self {
                <#ident as #krate::__private::ClassMethods>::new_duplica()
            }
            fn dataset_count(&self) -> usize { #count }
            fn dataset(&self, index: usize) -> #krate::__private::Option<&dyn #krate::__private::DataSet> {
                match index {
                    #(#idx => #krate::__private::Some(&self.#members),)*
                    _ => #krate::__private::None,
                }
            }
            fn dataset_mut(&mut self, index: usize) -> #krate::__private::Option<&mut dyn #krate::__private::DataSet> {
                match index {
                    #(#idx => #krate::__private::Some(&mut self.#members),)*
                    _ => #krate::__private::None,
                }
            }
            fn operation_begin(&mut self, op: &#krate::__private::Operation) {
                <#ident as #krate::__private::ClassMethods>::operation_begin(self, op)
            }
            fn operation_end(&mut self, op: &#krate::__private::Operation) {
                <#ident as #krate::__private::ClassMethods>::operation_end(self, op)
            }
            fn init_do(&mut self) {
                <#ident as #krate::__private::ClassMethods>::init_do(self)
            }
            fn approve_fault_recovery(&mut self) -> bool {
                <#ident as #krate::__private::ClassMethods>::approve_fault_recovery(self)
            }
            fn dispatch(
                &mut self,
                call: &mut #krate::__private::CallContext<'_>,
                method: #krate::__private::MethodId,
                args: &[u8],
            ) -> #krate::__private::Result<#krate::__private::Vec<u8>, #krate::__private::DispatchError> {
                <#ident as #krate::__private::ClassMethods>::dispatch(self, call, method, args)
            }
        }
    }
}
