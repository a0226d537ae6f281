//! Shared parsing helpers: error collection and `key = value` arguments.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Ident, Lit, Token};

/// Collects every error of an item so one build reports them all.
#[derive(Default)]
pub struct Errors(Option<syn::Error>);

impl Errors {
    /// Records `error`.
    pub fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(e) => e.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// Records an error spanning `tokens`.
    pub fn at(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records an error at `span`.
    pub fn at_span(&mut self, span: Span, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span, message));
    }

    /// The errors as `compile_error!` invocations (empty without errors).
    pub fn into_compile_errors(self) -> TokenStream {
        self.0.map(|e| e.to_compile_error()).unwrap_or_default()
    }
}

/// One `key = value` (or bare `key`) attribute argument.
pub struct Arg {
    /// The key.
    pub key: Ident,
    /// The value, if any.
    pub value: Option<Lit>,
}

impl Parse for Arg {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let key = Ident::parse_any(input)?;
        let value = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            Some(input.parse::<Lit>()?)
        } else {
            None
        };
        Ok(Arg { key, value })
    }
}

/// Parses `key = value, ...` into the arguments named in `valid`; reports
/// unknown and duplicated keys (listing the valid ones) and missing values.
pub fn parse_args(
    tokens: TokenStream,
    attr: &str,
    valid: &[&str],
    errors: &mut Errors,
) -> Vec<(Ident, Lit)> {
    parse_args_and_flags(tokens, attr, valid, &[], errors).0
}

/// Like [`parse_args`], with bare keys (`flags`) that take no value.
/// Returns the `key = value` arguments and the flags given.
pub fn parse_args_and_flags(
    tokens: TokenStream,
    attr: &str,
    valid: &[&str],
    flags: &[&str],
    errors: &mut Errors,
) -> (Vec<(Ident, Lit)>, Vec<Ident>) {
    let all: Vec<&str> = valid.iter().chain(flags).copied().collect();
    let parsed = match Punctuated::<Arg, Token![,]>::parse_terminated.parse2(tokens) {
        Ok(p) => p,
        Err(e) => {
            errors.push(syn::Error::new(
                e.span(),
                format!(
                    "cannot parse the arguments of `#[{attr}]`: expected `key = value, ...` with {}",
                    list_valid(&all)
                ),
            ));
            return (Vec::new(), Vec::new());
        }
    };
    let mut out: Vec<(Ident, Lit)> = Vec::new();
    let mut given: Vec<Ident> = Vec::new();
    for arg in parsed {
        let name = arg.key.unraw().to_string();
        if !all.contains(&name.as_str()) {
            errors.at(
                &arg.key,
                format!(
                    "unknown argument `{name}` of `#[{attr}]`; {}",
                    list_valid(&all)
                ),
            );
            continue;
        }
        if out.iter().any(|(k, _)| k.unraw() == name) || given.iter().any(|k| k.unraw() == name) {
            errors.at(
                &arg.key,
                format!("duplicate argument `{name}` of `#[{attr}]`; give it once"),
            );
            continue;
        }
        if flags.contains(&name.as_str()) {
            match arg.value {
                None => given.push(arg.key),
                Some(v) => errors.at(
                    &v,
                    format!("argument `{name}` of `#[{attr}]` takes no value: write `#[{attr}({name})]`"),
                ),
            }
            continue;
        }
        match arg.value {
            Some(v) => out.push((arg.key, v)),
            None => errors.at(
                &arg.key,
                format!("argument `{name}` of `#[{attr}]` needs a value: `{name} = ...`"),
            ),
        }
    }
    (out, given)
}

fn list_valid(valid: &[&str]) -> String {
    if valid.is_empty() {
        return "it takes no arguments".into();
    }
    let names: Vec<String> = valid.iter().map(|v| format!("`{v}`")).collect();
    format!("valid arguments are: {}", names.join(", "))
}

/// The `crate = "path"` override, or `::netz`.
pub fn crate_path(lit: Option<&Lit>, errors: &mut Errors) -> syn::Path {
    if let Some(lit) = lit {
        if let Lit::Str(s) = lit {
            match s.parse::<syn::Path>() {
                Ok(p) => return p,
                Err(_) => errors.at(lit, "`crate` must be a path such as `\"::netz\"`"),
            }
        } else {
            errors.at(lit, "`crate` must be a string such as `\"::netz\"`");
        }
    }
    syn::parse_quote!(::netz)
}

/// A string argument such as `name = "..."`.
pub fn string_arg(lit: &Lit, key: &str, errors: &mut Errors) -> Option<String> {
    match lit {
        Lit::Str(s) if !s.value().is_empty() => Some(s.value()),
        _ => {
            errors.at(lit, format!("`{key}` must be a non-empty string"));
            None
        }
    }
}

/// Whether `attr` is `#[name]` or `#[path::to::name]`.
pub fn is_attr(attr: &syn::Attribute, name: &str) -> bool {
    attr.path().segments.last().is_some_and(|s| s.ident == name)
}
