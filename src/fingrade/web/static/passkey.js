// Passkeys on the sign-in pages (W3C WebAuthn Level 3). Each form[data-passkey] carries its
// ceremony's options (data-options, the JSON of PublicKeyCredential{Request,Creation}Options); its
// button runs navigator.credentials.get() or .create() and submits the answer, toJSON(), in the
// form's hidden "credential" field. Everything else on the page is plain HTML: without this script,
// or without WebAuthn, the forms stay hidden and passwords and codes work as before.
"use strict";

(function () {
  const forms = document.querySelectorAll("form[data-passkey]");
  if (forms.length === 0) {
    return;
  }
  const supported = Boolean(window.PublicKeyCredential && navigator.credentials);

  // Base64url (RFC 4648 §5) for browsers without the JSON helpers of WebAuthn Level 3 (§5.1.8, §5.1.9).
  function decode(text) {
    const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const raw = atob(b64 + "===".slice((b64.length + 3) % 4));
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  }
  function encode(buffer) {
    const bytes = new Uint8Array(buffer);
    let raw = "";
    bytes.forEach((b) => { raw += String.fromCharCode(b); });
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function withIds(list) {
    return (list || []).map((d) => Object.assign({}, d, { id: decode(d.id) }));
  }
  function requestOptions(json) {
    if (PublicKeyCredential.parseRequestOptionsFromJSON) {
      return PublicKeyCredential.parseRequestOptionsFromJSON(json);
    }
    return Object.assign({}, json, { challenge: decode(json.challenge), allowCredentials: withIds(json.allowCredentials) });
  }
  function creationOptions(json) {
    if (PublicKeyCredential.parseCreationOptionsFromJSON) {
      return PublicKeyCredential.parseCreationOptionsFromJSON(json);
    }
    return Object.assign({}, json, {
      challenge: decode(json.challenge),
      user: Object.assign({}, json.user, { id: decode(json.user.id) }),
      excludeCredentials: withIds(json.excludeCredentials),
    });
  }
  function answer(credential) {
    if (typeof credential.toJSON === "function") {
      return credential.toJSON();
    }
    const r = credential.response;
    const response = { clientDataJSON: encode(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = encode(r.attestationObject);
      response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      response.authenticatorData = encode(r.authenticatorData);
      response.signature = encode(r.signature);
      if (r.userHandle) {
        response.userHandle = encode(r.userHandle);
      }
    }
    return {
      id: credential.id,
      rawId: encode(credential.rawId),
      type: credential.type,
      response: response,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults(),
    };
  }

  function explain(error, fallback) {
    const name = error && error.name;
    if (name === "NotAllowedError" || name === "AbortError") {
      return "The passkey request was cancelled or timed out. Try again, or " + fallback + ".";
    }
    if (name === "InvalidStateError") {
      return "This device has a passkey for your account already. Use it to sign in, or " + fallback + ".";
    }
    return "This browser or device cannot use a passkey here. Please " + fallback + ".";
  }

  forms.forEach((form) => {
    const message = document.getElementById(form.dataset.message || "passkey-message");
    const fallback = form.dataset.fallback || "use your code";
    const show = (text, problem) => {
      if (message) {
        message.textContent = text;
        message.className = problem ? "error" : "hint";
        message.setAttribute("role", problem ? "alert" : "status");
        message.hidden = false;
      }
    };
    if (!supported) {
      show("This browser cannot use passkeys. Please " + fallback + ".", false);
      return;
    }
    form.hidden = false;
    document.querySelectorAll("[data-passkey-or]").forEach((el) => { el.hidden = false; });
    const field = form.querySelector('input[name="credential"]');
    const button = form.querySelector("button");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (button.disabled) {
        return;
      }
      button.disabled = true;
      try {
        const json = JSON.parse(form.dataset.options);
        const credential = form.dataset.passkey === "create"
          ? await navigator.credentials.create({ publicKey: creationOptions(json) })
          : await navigator.credentials.get({ publicKey: requestOptions(json) });
        if (!credential) {
          throw new DOMException("no credential", "NotAllowedError");
        }
        field.value = JSON.stringify(answer(credential));
        form.submit();
      } catch (error) {
        show(explain(error, fallback), true);
        button.disabled = false;
      }
    });
  });
})();
