//! `#[doclass]` on an impl block (`#[rmc]` / `#[action]` methods and hooks):
//! parse -> check -> expand.

use crate::class::{proxy_ident, remote_ident};
use crate::common::{crate_path, is_attr, parse_args, string_arg, Errors};
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{FnArg, ImplItem, ItemImpl, Pat, ReturnType, Type};

/// The most RMCs and actions of one class (the core's `MAX_METHODS`).
const MAX_METHODS: usize = 255;
/// Methods of the impl block that are wired up as class hooks.
const HOOKS: &[&str] = &[
    "new_duplica",
    "init_do",
    "operation_begin",
    "operation_end",
    "approve_fault_recovery",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rmc,
    Action,
}

impl Kind {
    fn attr(self) -> &'static str {
        match self {
            Kind::Rmc => "rmc",
            Kind::Action => "action",
        }
    }
    fn what(self) -> &'static str {
        match self {
            Kind::Rmc => "an RMC",
            Kind::Action => "an action",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `x: T` (by value).
    Value,
    /// `x: &T` (in, borrowed).
    Borrowed,
    /// `x: &mut T` (in-out).
    InOut,
    /// `#[out] x: &mut T`.
    Out,
}

struct Param {
    /// The stub's parameter name.
    name: syn::Ident,
    /// The type on the wire (owned, decodable).
    wire: Type,
    /// The type the stub takes.
    stub: Type,
    mode: Mode,
}

struct Method {
    kind: Kind,
    ident: syn::Ident,
    name: String,
    vis: syn::Visibility,
    takes_call: bool,
    params: Vec<Param>,
    ret: Option<Type>,
}

/// The parsed impl block: the user's tokens with `#[rmc]`, `#[action]`,
/// `#[out]` and `#[inout]` removed, and a descriptor per valid method.
struct Model {
    item: ItemImpl,
    krate: syn::Path,
    self_ty: Type,
    proxy: Option<syn::Path>,
    remote: Option<syn::Path>,
    methods: Vec<Method>,
    hooks: Vec<String>,
    /// Every method name of the block.
    fn_names: Vec<syn::Ident>,
}

/// Expands `#[doclass(...)] impl Class { ... }`: parse (with the per-method
/// checks that build each method's descriptor), check the block, expand.
pub fn expand(args: TokenStream, item: ItemImpl) -> TokenStream {
    let mut errors = Errors::default();
    let model = parse(args, item, &mut errors);
    check(&model, &mut errors);
    let code = generate(&model);
    let errors = errors.into_compile_errors();
    quote! { #code #errors }
}

/// Parses the block; each `#[rmc]` / `#[action]` method goes through [`check_method`].
fn parse(args: TokenStream, mut item: ItemImpl, errors: &mut Errors) -> Model {
    let args = parse_args(args, "doclass", &["crate"], errors);
    let krate = crate_path(args.first().map(|(_, v)| v), errors);
    if let Some((_, path, _)) = &item.trait_ {
        errors.at(
            path,
            "`#[doclass]` goes on the inherent `impl Class { ... }` block holding the RMCs and actions, not on a trait impl",
        );
    }
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        errors.at(
            &item.generics,
            "a DO class cannot be generic: remove the generic parameters of this impl block",
        );
    }
    let self_ty = (*item.self_ty).clone();
    let proxy = match &self_ty {
        Type::Path(p) if p.qself.is_none() && !p.path.segments.is_empty() => {
            let mut path = p.path.clone();
            if let Some(last) = path.segments.last_mut() {
                last.ident = proxy_ident(&last.ident);
                last.arguments = syn::PathArguments::None;
            }
            Some(path)
        }
        other => {
            // Reported just below.
            let _ = other;
            None
        }
    };
    let remote = match &self_ty {
        Type::Path(p) if p.qself.is_none() && !p.path.segments.is_empty() => {
            let mut path = p.path.clone();
            if let Some(last) = path.segments.last_mut() {
                last.ident = remote_ident(&last.ident);
                last.arguments = syn::PathArguments::None;
            }
            Some(path)
        }
        other => {
            errors.at(
                other,
                "`#[doclass]` needs the class's name here: `impl Class { ... }`",
            );
            None
        }
    };

    let fn_names: Vec<syn::Ident> = item
        .items
        .iter()
        .filter_map(|i| match i {
            ImplItem::Fn(f) => Some(f.sig.ident.clone()),
            _ => None,
        })
        .collect();
    let mut methods = Vec::new();
    let mut hooks = Vec::new();
    let mut count = 0usize;
    for impl_item in item.items.iter_mut() {
        let ImplItem::Fn(f) = impl_item else { continue };
        let mut kind: Option<(Kind, syn::Attribute)> = None;
        let mut kept = Vec::new();
        for attr in std::mem::take(&mut f.attrs) {
            let k = if is_attr(&attr, "rmc") {
                Kind::Rmc
            } else if is_attr(&attr, "action") {
                Kind::Action
            } else {
                kept.push(attr);
                continue;
            };
            if let Some((prev, _)) = &kind {
                errors.at(
                    &attr,
                    format!(
                        "this method is already marked `#[{}]`; a method is either an `#[rmc]` or an `#[action]`, not both",
                        prev.attr()
                    ),
                );
                continue;
            }
            kind = Some((k, attr));
        }
        f.attrs = kept;
        let Some((kind, attr)) = kind else {
            let name = f.sig.ident.to_string();
            if HOOKS.contains(&name.as_str()) {
                hooks.push(name);
            }
            // Strip parameter markers so a stray one reports clearly.
            for input in f.sig.inputs.iter_mut() {
                if let FnArg::Typed(pt) = input {
                    for attr in &pt.attrs {
                        if is_attr(attr, "out") || is_attr(attr, "inout") {
                            errors.at(attr, "`#[out]` / `#[inout]` only apply to parameters of an `#[rmc]` method");
                        }
                    }
                    pt.attrs
                        .retain(|a| !is_attr(a, "out") && !is_attr(a, "inout"));
                }
            }
            continue;
        };
        count += 1;
        if count == MAX_METHODS + 1 {
            errors.at(
                &attr,
                format!(
                    "too many methods: a class has at most {MAX_METHODS} RMCs and actions (method ids 0..=254) and this is number {}; move some into another class",
                    MAX_METHODS + 1
                ),
            );
        }
        let mut name = f.sig.ident.to_string();
        let attr_args = match &attr.meta {
            syn::Meta::Path(_) => TokenStream::new(),
            syn::Meta::List(l) => l.tokens.clone(),
            syn::Meta::NameValue(nv) => {
                errors.at(
                    nv,
                    format!(
                        "write `#[{}]` or `#[{}(name = \"...\")]`",
                        kind.attr(),
                        kind.attr()
                    ),
                );
                TokenStream::new()
            }
        };
        for (_, value) in parse_args(attr_args, kind.attr(), &["name"], errors) {
            if let Some(n) = string_arg(&value, "name", errors) {
                name = n;
            }
        }
        if let Some(m) = check_method(kind, name, f, &self_ty, errors) {
            if count <= MAX_METHODS {
                methods.push(m);
            }
        }
    }

    Model {
        item,
        krate,
        self_ty,
        proxy,
        remote,
        methods,
        hooks,
        fn_names,
    }
}

/// The rules across the methods of the block.
fn check(model: &Model, errors: &mut Errors) {
    check_stub_collisions(model, errors);
    check_hook_names(model, errors);
    check_unique_names(model, errors);
}

/// A generated stub (`call_<rmc>`, `<action>_on_master`,
/// `<action>_on_duplicas`) must not share its name with a method of the block.
fn check_stub_collisions(model: &Model, errors: &mut Errors) {
    for m in &model.methods {
        let stubs = match m.kind {
            Kind::Rmc => vec![format!("call_{}", m.ident)],
            Kind::Action => vec![
                format!("{}_on_master", m.ident),
                format!("{}_on_duplicas", m.ident),
            ],
        };
        for stub in stubs {
            if let Some(user) = model.fn_names.iter().find(|n| **n == stub) {
                errors.at(
                    user,
                    format!(
                        "method `{stub}` collides with the stub `{stub}` that `#[{}] {}` generates; rename this method (or the {})",
                        m.kind.attr(),
                        m.ident,
                        m.kind.attr()
                    ),
                );
            }
        }
    }
}

/// The class hooks (`init_do`, `operation_begin`, ...) are called by netz;
/// they cannot be RMCs or actions.
fn check_hook_names(model: &Model, errors: &mut Errors) {
    for m in &model.methods {
        if HOOKS.contains(&m.ident.to_string().as_str()) {
            errors.at(
                &m.ident,
                format!(
                    "`{}` is a class hook called by netz; it cannot be `#[{}]`: rename the method",
                    m.ident,
                    m.kind.attr()
                ),
            );
        }
    }
}

/// Method names (the names `Registry::method_id` finds) are unique per class.
fn check_unique_names(model: &Model, errors: &mut Errors) {
    let mut names: Vec<&str> = Vec::new();
    for m in &model.methods {
        if names.contains(&m.name.as_str()) {
            errors.at(
                &m.ident,
                format!(
                    "two methods of this class are named `{}`; give one another `name = \"...\"`",
                    m.name
                ),
            );
        }
        names.push(&m.name);
    }
}

/// Checks one `#[rmc]` / `#[action]` method and builds its descriptor
/// (`None` when it is invalid); strips its parameter markers. The rules: no
/// `async`, `unsafe`, generics or variadics; a `&self` / `&mut self`
/// receiver; an optional `&mut CallContext<'_>` right after it; parameters
/// of owned serde types, `&T`, `&str`, `&[T]`, `&mut T` (in-out) or
/// `#[out] &mut T` (out; not for actions); no return value for actions.
fn check_method(
    kind: Kind,
    name: String,
    f: &mut syn::ImplItemFn,
    self_ty: &Type,
    errors: &mut Errors,
) -> Option<Method> {
    let mut ok = true;
    let what = kind.what();
    let sig = &mut f.sig;
    if let Some(a) = &sig.asyncness {
        errors.at(a, format!("{what} cannot be `async`: it runs to completion inside the station; for a call that waits, use `call.operation().postpone_operation(..)`"));
        ok = false;
    }
    if let Some(u) = &sig.unsafety {
        errors.at(
            u,
            format!("{what} cannot be `unsafe`: remote stations call it"),
        );
        ok = false;
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.at(&sig.generics, format!("{what} cannot be generic: remote stations must know the concrete parameter types; use concrete types"));
        ok = false;
    }
    if let Some(v) = &sig.variadic {
        errors.at(v, format!("{what} cannot be variadic"));
        ok = false;
    }
    // The receiver.
    match sig.inputs.first() {
        Some(FnArg::Receiver(r)) => {
            if r.reference.is_none() || r.colon_token.is_some() {
                errors.at(
                    r,
                    format!("{what} takes `&mut self` or `&self`: it runs on the object inside the station's store, which it cannot take by value"),
                );
                ok = false;
            }
        }
        _ => {
            errors.at(
                &sig.ident,
                format!(
                    "{what} needs a receiver: write `fn {}(&mut self, ...)` (or `&self`)",
                    sig.ident
                ),
            );
            ok = false;
        }
    }
    let mut params = Vec::new();
    let mut takes_call = false;
    for (index, input) in sig.inputs.iter_mut().enumerate() {
        let FnArg::Typed(pt) = input else { continue };
        let mut out = None;
        let mut inout = None;
        pt.attrs.retain(|a| {
            if is_attr(a, "out") {
                out = Some(a.clone());
                false
            } else if is_attr(a, "inout") {
                inout = Some(a.clone());
                false
            } else {
                true
            }
        });
        if let Some(call_ref) = call_context(&pt.ty) {
            if call_ref.mutability.is_none() {
                errors.at(&pt.ty, "take the call context as `&mut CallContext<'_>`");
                ok = false;
            } else if index != 1 {
                errors.at(
                    &pt.ty,
                    "the `&mut CallContext<'_>` parameter must come first, right after `self`",
                );
                ok = false;
            }
            takes_call = true;
            continue;
        }
        let name = match &*pt.pat {
            Pat::Ident(pi) if pi.ident != "ctx" => pi.ident.clone(),
            _ => format_ident!("arg{}", index),
        };
        let mut mode = Mode::Value;
        let mut wire = (*pt.ty).clone();
        let mut stub = (*pt.ty).clone();
        match &*pt.ty {
            Type::Reference(r) if r.mutability.is_some() => {
                if kind == Kind::Action {
                    errors.at(
                        &pt.ty,
                        "an action has no out or in-out parameters (it returns nothing): take the value as `T` or `&T`, or make the method an `#[rmc]`",
                    );
                    ok = false;
                }
                mode = if out.is_some() {
                    Mode::Out
                } else {
                    Mode::InOut
                };
                let elem = &*r.elem;
                if is_path(elem, "str") {
                    errors.at(
                        &pt.ty,
                        "`&mut str` cannot be an out parameter: use `&mut String`",
                    );
                    ok = false;
                } else if let Type::Slice(s) = elem {
                    let e = &s.elem;
                    errors.at(
                        &pt.ty,
                        format!(
                            "`&mut [T]` cannot be an out parameter: use `&mut Vec<{}>`",
                            e.to_token_stream()
                        ),
                    );
                    ok = false;
                } else {
                    ok &= check_owned(elem, errors);
                }
                wire = elem.clone();
                stub = syn::parse_quote!(&#elem);
            }
            Type::Reference(r) => {
                mode = Mode::Borrowed;
                let elem = &*r.elem;
                if r.lifetime.as_ref().is_some_and(|l| l.ident != "_") {
                    errors.at(
                        &pt.ty,
                        "named lifetimes are not supported in RMC parameters: write `&T`",
                    );
                    ok = false;
                }
                if is_path(elem, "str") {
                    wire = syn::parse_quote!(::std::string::String);
                } else if let Type::Slice(s) = elem {
                    let e = &s.elem;
                    ok &= check_owned(e, errors);
                    wire = syn::parse_quote!(::std::vec::Vec<#e>);
                } else {
                    ok &= check_owned(elem, errors);
                    wire = elem.clone();
                }
            }
            ty => ok &= check_owned(ty, errors),
        }
        if let Some(a) = &out {
            if mode != Mode::Out {
                errors.at(a, "`#[out]` marks a `&mut T` parameter whose value the caller receives: change the type to `&mut T`");
                ok = false;
            }
        }
        if let Some(a) = &inout {
            if mode != Mode::InOut {
                errors.at(
                    a,
                    "`#[inout]` marks a `&mut T` parameter (and cannot be combined with `#[out]`)",
                );
                ok = false;
            }
        }
        replace_self(&mut stub, self_ty);
        params.push(Param {
            name,
            wire,
            stub,
            mode,
        });
    }
    let ret = match &sig.output {
        ReturnType::Default => None,
        ReturnType::Type(_, ty) if matches!(&**ty, Type::Tuple(t) if t.elems.is_empty()) => None,
        ReturnType::Type(arrow, ty) => {
            if kind == Kind::Action {
                let span = arrow.span().join(ty.span()).unwrap_or(ty.span());
                errors.at_span(
                    span,
                    "an action cannot return a value: it runs on several stations and nobody receives a result; remove the return type or make the method an `#[rmc]`",
                );
                ok = false;
                None
            } else {
                if matches!(&**ty, Type::Reference(_)) {
                    errors.at(ty, "an RMC cannot return a reference: the value crosses the network; return an owned type");
                    ok = false;
                } else {
                    ok &= check_owned(ty, errors);
                }
                Some((**ty).clone())
            }
        }
    };
    ok.then(|| Method {
        kind,
        ident: sig.ident.clone(),
        name,
        vis: f.vis.clone(),
        takes_call,
        params,
        ret,
    })
}

/// `&mut CallContext<..>` / `&CallContext<..>`: the reference.
fn call_context(ty: &Type) -> Option<&syn::TypeReference> {
    let Type::Reference(r) = ty else { return None };
    let Type::Path(p) = &*r.elem else { return None };
    (p.qself.is_none() && p.path.segments.last()?.ident == "CallContext").then_some(r)
}

fn is_path(ty: &Type, name: &str) -> bool {
    matches!(ty, Type::Path(p) if p.qself.is_none() && p.path.is_ident(name))
}

/// Checks that `ty` is an owned, sized type that can cross the network.
fn check_owned(ty: &Type, errors: &mut Errors) -> bool {
    let unsupported = |errors: &mut Errors, what: &str| {
        errors.at(
            ty,
            format!("unsupported parameter type: {what}; RMC and action parameters cross the network, so use owned serde types (numbers, `String`, arrays, `Vec`, `VecDeque`, `LinkedList`, `DOHandle`, your own `#[derive(Serialize, Deserialize)]` types)"),
        );
        false
    };
    match ty {
        Type::Array(a) => check_owned(&a.elem, errors),
        Type::Group(g) => check_owned(&g.elem, errors),
        Type::Paren(p) => check_owned(&p.elem, errors),
        Type::Tuple(t) => t.elems.iter().all(|e| check_owned(e, errors)),
        Type::Path(p) => {
            if p.path.is_ident("str") {
                return unsupported(errors, "`str` is unsized (use `String` or `&str`)");
            }
            let mut ok = true;
            if let Some(q) = &p.qself {
                ok &= check_owned(&q.ty, errors);
            }
            for seg in &p.path.segments {
                if let syn::PathArguments::AngleBracketed(args) = &seg.arguments {
                    for arg in &args.args {
                        match arg {
                            syn::GenericArgument::Type(t) => ok &= check_owned(t, errors),
                            syn::GenericArgument::Lifetime(_) => {
                                ok &= unsupported(errors, "types that borrow (with a lifetime) cannot be decoded");
                            }
                            _ => {}
                        }
                    }
                }
            }
            ok
        }
        Type::Reference(_) => unsupported(errors, "a reference inside a parameter type cannot be decoded (only the outermost `&T` / `&mut T` is allowed)"),
        Type::ImplTrait(_) => unsupported(errors, "`impl Trait` names no concrete type to decode"),
        Type::TraitObject(_) => unsupported(errors, "a trait object names no concrete type to decode"),
        Type::Ptr(_) => unsupported(errors, "a raw pointer means nothing on another station"),
        Type::BareFn(_) => unsupported(errors, "a function pointer means nothing on another station"),
        Type::Slice(_) => unsupported(errors, "a slice is unsized (use `Vec<T>` or `&[T]`)"),
        Type::Never(_) => unsupported(errors, "`!` has no values"),
        Type::Infer(_) => unsupported(errors, "`_` must be spelled out"),
        _ => true,
    }
}

/// Replaces `Self` by the class type (stubs live on the proxy type).
fn replace_self(ty: &mut Type, self_ty: &Type) {
    struct R<'a>(&'a Type);
    impl VisitMut for R<'_> {
        fn visit_type_mut(&mut self, ty: &mut Type) {
            if let Type::Path(p) = ty {
                if p.qself.is_none() && p.path.segments.first().is_some_and(|s| s.ident == "Self") {
                    let rest: Vec<_> = p.path.segments.iter().skip(1).cloned().collect();
                    let this = self.0;
                    *ty = if rest.is_empty() {
                        this.clone()
                    } else {
                        syn::parse_quote!(<#this>::#(#rest)::*)
                    };
                    return;
                }
            }
            syn::visit_mut::visit_type_mut(self, ty);
        }
    }
    R(self_ty).visit_type_mut(ty);
}

fn reply_type(m: &Method) -> TokenStream {
    let mut elems: Vec<&Type> = Vec::new();
    if let Some(r) = &m.ret {
        elems.push(r);
    }
    elems.extend(
        m.params
            .iter()
            .filter(|p| matches!(p.mode, Mode::InOut | Mode::Out))
            .map(|p| &p.wire),
    );
    match elems.len() {
        0 => quote!(()),
        1 => quote!(#(#elems)*),
        _ => quote!((#(#elems),*)),
    }
}

fn generate(model: &Model) -> TokenStream {
    let krate = &model.krate;
    let item = &model.item;
    let self_ty = &model.self_ty;
    let p = quote!(#krate::__private);
    if !item.generics.params.is_empty()
        || item.generics.where_clause.is_some()
        || item.trait_.is_some()
    {
        // Reported in the check step; generating would only cascade.
        return quote!(#item);
    }
    let infos = model.methods.iter().map(|m| {
        let name = &m.name;
        let kind = match m.kind {
            Kind::Rmc => quote!(#p::MethodKind::Rmc),
            Kind::Action => quote!(#p::MethodKind::Action),
        };
        quote!(#p::MethodInfo { name: #name, kind: #kind })
    });
    let arms = model.methods.iter().enumerate().map(|(id, m)| {
        let id = id as u16;
        let ident = &m.ident;
        let sent: Vec<&Param> = m
            .params
            .iter()
            .filter(|p| matches!(p.mode, Mode::Value | Mode::Borrowed | Mode::InOut))
            .collect();
        let local = |i: usize| format_ident!("__netz_a{}", i, span = Span::mixed_site());
        let sent_locals: Vec<syn::Ident> = m
            .params
            .iter()
            .enumerate()
            .filter(|(_, p)| p.mode != Mode::Out)
            .map(|(i, _)| local(i))
            .collect();
        let sent_tys = sent.iter().map(|p| &p.wire);
        let asserts = m.params.iter().map(|param| {
            let w = &param.wire;
            quote_spanned!(w.span()=> #p::assert_wire::<#w>();)
        });
        let ret_assert = m
            .ret
            .as_ref()
            .map(|r| quote_spanned!(r.span()=> #p::assert_wire::<#r>();));
        let decode = if sent.is_empty() {
            quote!()
        } else {
            quote! {
                #[allow(unused_mut)]
                let (#(mut #sent_locals,)*): (#(#sent_tys,)*) = #p::decode_args(__netz_args)?;
            }
        };
        let outs = m
            .params
            .iter()
            .enumerate()
            .filter(|(_, param)| param.mode == Mode::Out)
            .map(|(i, param)| {
                let l = local(i);
                let w = &param.wire;
                quote!(let mut #l: #w = <#w as #p::Default>::default();)
            });
        let call_arg = m.takes_call.then(|| quote!(__netz_call,));
        let args = m.params.iter().enumerate().map(|(i, p)| {
            let l = local(i);
            match p.mode {
                Mode::Value => quote!(#l),
                Mode::Borrowed => quote!(&#l),
                Mode::InOut | Mode::Out => quote!(&mut #l),
            }
        });
        let ret_local = format_ident!("__netz_ret", span = Span::mixed_site());
        let mut reply: Vec<TokenStream> = Vec::new();
        if m.ret.is_some() {
            reply.push(quote!(&#ret_local));
        }
        for (i, p) in m.params.iter().enumerate() {
            if matches!(p.mode, Mode::InOut | Mode::Out) {
                let l = local(i);
                reply.push(quote!(&#l));
            }
        }
        let reply = match reply.len() {
            0 => quote!(#p::Vec::new()),
            1 => quote!(#p::encode_reply(#(#reply)*)),
            _ => quote!(#p::encode_reply(&(#(#reply),*))),
        };
        let bind = if m.ret.is_some() {
            quote!(let #ret_local =)
        } else {
            quote!()
        };
        quote! {
            #id => {
                #(#asserts)*
                #ret_assert
                #decode
                #(#outs)*
                #bind Self::#ident(self, #call_arg #(#args),*);
                #p::Ok(#reply)
            }
        }
    });
    let hooks = model.hooks.iter().map(|h| match h.as_str() {
        "new_duplica" => quote!(fn new_duplica() -> Self { Self::new_duplica() }),
        "init_do" => quote!(fn init_do(&mut self) { Self::init_do(self) }),
        "operation_begin" => quote!(fn operation_begin(&mut self, op: &#p::Operation) { Self::operation_begin(self, op) }),
        "operation_end" => quote!(fn operation_end(&mut self, op: &#p::Operation) { Self::operation_end(self, op) }),
        _ => quote!(fn approve_fault_recovery(&mut self) -> bool { Self::approve_fault_recovery(self) }),
    });
    let new_duplica = (!model.hooks.iter().any(|h| h == "new_duplica"))
        .then(|| quote!(fn new_duplica() -> Self { <Self as #p::Default>::default() }));
    let class_name = self_ty.to_token_stream().to_string().replace(' ', "");
    let stubs = model.methods.iter().enumerate().map(|(id, m)| {
        let id16 = id as u16;
        let vis = &m.vis;
        let sent: Vec<&Param> = m.params.iter().filter(|p| p.mode != Mode::Out).collect();
        let names: Vec<&syn::Ident> = sent.iter().map(|p| &p.name).collect();
        let tys = sent.iter().map(|p| &p.stub);
        let values = sent.iter().map(|p| {
            let n = &p.name;
            if p.mode == Mode::Value {
                quote!(&#n)
            } else {
                quote!(#n)
            }
        });
        let tuple = quote!(&(#(#values,)*));
        match m.kind {
            Kind::Rmc => {
                let stub = format_ident!("call_{}", m.ident);
                let mut reply: Type = syn::parse2(reply_type(m)).unwrap_or_else(|_| syn::parse_quote!(()));
                replace_self(&mut reply, self_ty);
                let ctx = format_ident!("ctx");
                let outs: Vec<String> = m
                    .params
                    .iter()
                    .filter(|p| matches!(p.mode, Mode::InOut | Mode::Out))
                    .map(|p| format!("`{}`", p.name))
                    .collect();
                let result_doc = match (m.ret.is_some(), outs.is_empty()) {
                    (false, true) => "The RMC returns nothing: `ctx` reports the outcome only.".to_string(),
                    (true, true) => "The return value arrives in `ctx` (`ctx.result()`).".to_string(),
                    (false, false) => format!("`ctx.result()` delivers the out and in-out values {} (a tuple when there are several).", outs.join(", ")),
                    (true, false) => format!("`ctx.result()` delivers the tuple of the return value and the out and in-out values {}.", outs.join(", ")),
                };
                let doc = format!(
                    "Calls RMC `{class_name}::{}` (method id {id}) on the object with the targets and flags of `ctx`. \
                     Returns whether the call was sent. {result_doc}",
                    m.ident
                );
                quote! {
                    #[doc = #doc]
                    #vis fn #stub(&mut self, #ctx: &#p::RmcContext<#reply>, #(#names: #tys),*) -> bool {
                        self.inner.call(#ctx, #p::MethodId(#id16), #tuple)
                    }
                }
            }
            Kind::Action => {
                let on_master = format_ident!("{}_on_master", m.ident);
                let on_duplicas = format_ident!("{}_on_duplicas", m.ident);
                let doc_m = format!(
                    "Runs action `{class_name}::{}` (method id {id}) on the master, which then runs it on every duplica. Returns whether the action was sent.",
                    m.ident
                );
                let doc_d = format!(
                    "Runs action `{class_name}::{}` (method id {id}) on every duplica; only the master's station may call it. Returns whether the action was sent.",
                    m.ident
                );
                let tys: Vec<&Type> = sent.iter().map(|p| &p.stub).collect();
                quote! {
                    #[doc = #doc_m]
                    #vis fn #on_master(&mut self, #(#names: #tys),*) -> bool {
                        self.inner.action_on_master(#p::MethodId(#id16), #tuple)
                    }
                    #[doc = #doc_d]
                    #vis fn #on_duplicas(&mut self, #(#names: #tys),*) -> bool {
                        self.inner.action_on_duplicas(#p::MethodId(#id16), #tuple)
                    }
                }
            }
        }
    });
    let remote_fns = model.methods.iter().enumerate().map(|(id, m)| {
        let id16 = id as u16;
        let vis = &m.vis;
        let ident = &m.ident;
        let sent: Vec<&Param> = m.params.iter().filter(|p| p.mode != Mode::Out).collect();
        let names: Vec<&syn::Ident> = sent.iter().map(|p| &p.name).collect();
        let tys = sent.iter().map(|p| &p.stub);
        let values = sent.iter().map(|p| {
            let n = &p.name;
            if p.mode == Mode::Value {
                quote!(&#n)
            } else {
                quote!(#n)
            }
        });
        let tuple = quote!(&(#(#values,)*));
        match m.kind {
            Kind::Rmc => {
                let mut reply: Type =
                    syn::parse2(reply_type(m)).unwrap_or_else(|_| syn::parse_quote!(()));
                replace_self(&mut reply, self_ty);
                let doc = format!(
                    "Calls RMC `{class_name}::{ident}` (method id {id}), by default on the \
                     object's master. Set targets and flags on the returned call, then `.await` \
                     it for `Result<{}, CallError>` (the return value and the out and in-out \
                     parameters). Dropping the future cancels the call.",
                    reply.to_token_stream().to_string().replace(' ', "")
                );
                quote! {
                    #[doc = #doc]
                    #vis fn #ident(&self, #(#names: #tys),*) -> #p::net::RmcCall<#reply> {
                        self.inner.rmc::<#reply>(#p::MethodId(#id16), #tuple)
                    }
                }
            }
            Kind::Action => {
                let doc = format!(
                    "Runs action `{class_name}::{ident}` (method id {id}): by default on the \
                     master, which then runs it on every duplica (`.on_duplicas()` for the \
                     duplicas only). `.await` or `.send()` the returned call."
                );
                quote! {
                    #[doc = #doc]
                    #vis fn #ident(&self, #(#names: #tys),*) -> #p::net::ActionCall {
                        self.inner.action(#p::MethodId(#id16), #tuple)
                    }
                }
            }
        }
    });
    let remote_impl = model.remote.as_ref().map(|remote| {
        quote! {
            #p::if_net! {
                #[allow(dead_code, clippy::too_many_arguments)]
                impl #remote {
                    #(#remote_fns)*
                }
            }
        }
    });
    let proxy_impl = model.proxy.as_ref().map(|proxy| {
        quote! {
            #[allow(dead_code, clippy::too_many_arguments)]
            impl<'a> #proxy<'a> {
                #(#stubs)*
            }
        }
    });
    quote! {
        #item

        impl #p::ClassMethods for #self_ty {
            const METHODS: &'static [#p::MethodInfo] = &[#(#infos),*];
            #new_duplica
            #(#hooks)*
            #[allow(unused_variables, clippy::unit_arg, clippy::let_unit_value)]
            fn dispatch(
                &mut self,
                __netz_call: &mut #p::CallContext<'_>,
                __netz_method: #p::MethodId,
                __netz_args: &[u8],
            ) -> #p::Result<#p::Vec<u8>, #p::DispatchError> {
                match __netz_method.0 {
                    #(#arms)*
                    _ => #p::Err(#p::DispatchError::UnknownMethod(__netz_method)),
                }
            }
        }

        #proxy_impl

        #remote_impl
    }
}
