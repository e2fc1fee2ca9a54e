// English and Spanish. `t(key, params)` fills `{name}` placeholders; elements in the page name
// their strings with data-i18n (text), data-i18n-placeholder and data-i18n-aria-label.

const MESSAGES = {
  en: {
    skipToComposer: "Skip to the message box",
    newChat: "New chat",
    sections: "Sections",
    chatView: "Chat",
    kbView: "Knowledge bases",
    searchLabel: "Search conversations",
    searchPlaceholder: "Search conversations",
    conversations: "Conversations",
    noConversations: "No conversations yet.",
    noMatches: "No conversation matches “{query}”.",
    language: "Language",
    theme: "Theme",
    themeSystem: "System",
    themeLight: "Light",
    themeDark: "Dark",
    settings: "Settings",
    menu: "Menu",
    model: "Model",
    agentMode: "Agent (tools)",
    messages: "Messages",
    emptyTitle: "What can I help with?",
    emptyHint: "Answers appear as they are written.",
    messageLabel: "Message",
    messagePlaceholder: "Message Llamarada",
    composerHint: "Enter sends · Shift+Enter adds a line · Esc stops",
    send: "Send",
    stop: "Stop",
    cancel: "Cancel",
    save: "Save",
    delete: "Delete",
    rename: "Rename",
    renameTitle: "Rename conversation",
    titleLabel: "Title",
    deleteTitle: "Delete conversation?",
    deleteBody: "“{title}” and all its messages will be removed from this browser.",
    conversationActions: "Actions for “{title}”",
    untitled: "New chat",
    you: "You",
    assistant: "Assistant",
    agent: "Agent",
    copy: "Copy",
    copied: "Copied",
    copyFailed: "Could not copy",
    copyCode: "Copy code",
    retry: "Retry",
    cacheHit: "cache hit",
    cacheHitTitle: "Answered from the response cache",
    tokensPerSecond: "{value} tokens/s",
    firstToken: "first token {value}",
    tokens: "{value} tokens",
    steps_one: "1 tool step",
    steps_other: "{count} tool steps",
    stepArguments: "Arguments",
    stepResult: "Result",
    stepError: "Error",
    stopped: "Stopped.",
    answering: "Answering…",
    answerDone: "Answer complete.",
    answerStopped: "Answer stopped.",
    errorPrefix: "Error: {message}",
    networkError: "The server could not be reached.",
    unauthorized: "The server asks for an API key: set it in Settings.",
    retryAfter: "{message} Try again in {seconds} s.",
    loadingModels: "Loading models…",
    noModels: "No models",
    modelsFailed: "Could not load the models: {message}",
    settingsTitle: "Settings",
    apiKey: "API key",
    apiKeyHint: "Sent as “Authorization: Bearer …” when the server asks for one. Kept in this browser only.",
    storageFull: "This browser's storage is full: the conversation may not be kept.",
    agentHint: "Agent mode: each message is a separate task; the agent may use tools.",
    kbNew: "New knowledge base",
    kbNameHint: "3 or more letters, digits, “.”, “_” or “-”.",
    create: "Create",
    kbEmpty: "No knowledge bases yet.",
    kbStart: "Create a knowledge base, then add documents and ask questions about them.",
    kbPick: "Choose a knowledge base.",
    documents_one: "1 document",
    documents_other: "{count} documents",
    passages_one: "1 passage",
    passages_other: "{count} passages",
    kbCreated: "Knowledge base {name} created.",
    kbDelete: "Delete knowledge base",
    kbDeleteTitle: "Delete knowledge base?",
    kbDeleteBody: "“{name}” and all its documents will be deleted from the server.",
    kbDeleted: "Knowledge base {name} deleted.",
    addDocuments: "Add documents",
    chooseFiles: "Files to add",
    upload: "Upload",
    uploadHint: "Text, Markdown, HTML, PDF or Word files.",
    uploadProgress: "Upload progress",
    uploading: "Uploading… {percent} %",
    parsed: "Reading {file}…",
    indexing: "Indexing {file}: {done} of {total} passages",
    uploaded: "Added: {documents}.",
    uploadedWithDuplicates: "Added: {documents}; already there: {duplicates}.",
    documents: "Documents",
    noDocuments: "No documents yet.",
    loading: "Loading…",
    docSource: "Source",
    docType: "Type",
    docChunks: "Passages",
    docSize: "Size",
    docAdded: "Added",
    actions: "Actions",
    deleteDocument: "Delete {source}",
    docDeleteTitle: "Delete document?",
    docDeleteBody: "“{source}” will be removed from this knowledge base.",
    docDeleted: "{source} deleted.",
    ask: "Ask",
    questionLabel: "Question",
    questionPlaceholder: "Ask about these documents",
    askButton: "Ask",
    sources: "Sources",
    citation: "Source {n}",
    score: "relevance {value}",
    page: "page {n}",
  },
  es: {
    skipToComposer: "Ir al cuadro de mensaje",
    newChat: "Nuevo chat",
    sections: "Secciones",
    chatView: "Chat",
    kbView: "Bases de conocimiento",
    searchLabel: "Buscar conversaciones",
    searchPlaceholder: "Buscar conversaciones",
    conversations: "Conversaciones",
    noConversations: "Aún no hay conversaciones.",
    noMatches: "Ninguna conversación coincide con «{query}».",
    language: "Idioma",
    theme: "Tema",
    themeSystem: "Sistema",
    themeLight: "Claro",
    themeDark: "Oscuro",
    settings: "Ajustes",
    menu: "Menú",
    model: "Modelo",
    agentMode: "Agente (herramientas)",
    messages: "Mensajes",
    emptyTitle: "¿En qué puedo ayudarte?",
    emptyHint: "Las respuestas aparecen a medida que se escriben.",
    messageLabel: "Mensaje",
    messagePlaceholder: "Escribe a Llamarada",
    composerHint: "Intro envía · Mayús+Intro añade una línea · Esc detiene",
    send: "Enviar",
    stop: "Detener",
    cancel: "Cancelar",
    save: "Guardar",
    delete: "Eliminar",
    rename: "Renombrar",
    renameTitle: "Renombrar conversación",
    titleLabel: "Título",
    deleteTitle: "¿Eliminar la conversación?",
    deleteBody: "«{title}» y todos sus mensajes se borrarán de este navegador.",
    conversationActions: "Acciones para «{title}»",
    untitled: "Nueva conversación",
    you: "Tú",
    assistant: "Asistente",
    agent: "Agente",
    copy: "Copiar",
    copied: "Copiado",
    copyFailed: "No se pudo copiar",
    copyCode: "Copiar código",
    retry: "Reintentar",
    cacheHit: "desde caché",
    cacheHitTitle: "Respuesta servida desde la caché",
    tokensPerSecond: "{value} tokens/s",
    firstToken: "primer token {value}",
    tokens: "{value} tokens",
    steps_one: "1 paso con herramientas",
    steps_other: "{count} pasos con herramientas",
    stepArguments: "Argumentos",
    stepResult: "Resultado",
    stepError: "Error",
    stopped: "Detenido.",
    answering: "Respondiendo…",
    answerDone: "Respuesta completa.",
    answerStopped: "Respuesta detenida.",
    errorPrefix: "Error: {message}",
    networkError: "No se pudo contactar con el servidor.",
    unauthorized: "El servidor pide una clave de API: configúrala en Ajustes.",
    retryAfter: "{message} Vuelve a intentarlo en {seconds} s.",
    loadingModels: "Cargando modelos…",
    noModels: "Sin modelos",
    modelsFailed: "No se pudieron cargar los modelos: {message}",
    settingsTitle: "Ajustes",
    apiKey: "Clave de API",
    apiKeyHint:
      "Se envía como «Authorization: Bearer …» si el servidor la pide. Solo se guarda en este navegador.",
    storageFull: "El almacenamiento del navegador está lleno: puede que la conversación no se guarde.",
    agentHint: "Modo agente: cada mensaje es una tarea aparte; el agente puede usar herramientas.",
    kbNew: "Nueva base de conocimiento",
    kbNameHint: "3 o más letras, dígitos, «.», «_» o «-».",
    create: "Crear",
    kbEmpty: "Aún no hay bases de conocimiento.",
    kbStart: "Crea una base de conocimiento, añade documentos y pregunta sobre ellos.",
    kbPick: "Elige una base de conocimiento.",
    documents_one: "1 documento",
    documents_other: "{count} documentos",
    passages_one: "1 fragmento",
    passages_other: "{count} fragmentos",
    kbCreated: "Base de conocimiento {name} creada.",
    kbDelete: "Eliminar base de conocimiento",
    kbDeleteTitle: "¿Eliminar la base de conocimiento?",
    kbDeleteBody: "«{name}» y todos sus documentos se borrarán del servidor.",
    kbDeleted: "Base de conocimiento {name} eliminada.",
    addDocuments: "Añadir documentos",
    chooseFiles: "Archivos que añadir",
    upload: "Subir",
    uploadHint: "Archivos de texto, Markdown, HTML, PDF o Word.",
    uploadProgress: "Progreso de la subida",
    uploading: "Subiendo… {percent} %",
    parsed: "Leyendo {file}…",
    indexing: "Indexando {file}: {done} de {total} fragmentos",
    uploaded: "Añadidos: {documents}.",
    uploadedWithDuplicates: "Añadidos: {documents}; ya estaban: {duplicates}.",
    documents: "Documentos",
    noDocuments: "Aún no hay documentos.",
    loading: "Cargando…",
    docSource: "Fuente",
    docType: "Tipo",
    docChunks: "Fragmentos",
    docSize: "Tamaño",
    docAdded: "Añadido",
    actions: "Acciones",
    deleteDocument: "Eliminar {source}",
    docDeleteTitle: "¿Eliminar el documento?",
    docDeleteBody: "«{source}» se quitará de esta base de conocimiento.",
    docDeleted: "{source} eliminado.",
    ask: "Preguntar",
    questionLabel: "Pregunta",
    questionPlaceholder: "Pregunta sobre estos documentos",
    askButton: "Preguntar",
    sources: "Fuentes",
    citation: "Fuente {n}",
    score: "relevancia {value}",
    page: "página {n}",
  },
};

export const LANGUAGES = Object.keys(MESSAGES);

let current = "en";

/** The language to start in: the saved one, else the browser's if we speak it, else English. */
export function initialLanguage(saved) {
  if (LANGUAGES.includes(saved)) return saved;
  for (const tag of navigator.languages ?? [navigator.language]) {
    const base = String(tag).slice(0, 2).toLowerCase();
    if (LANGUAGES.includes(base)) return base;
  }
  return "en";
}

export function language() {
  return current;
}

/** Switch language and translate the page; listeners of "languagechange" redo the rest. */
export function setLanguage(lang) {
  current = LANGUAGES.includes(lang) ? lang : "en";
  document.documentElement.lang = current;
  translate(document);
  document.dispatchEvent(new CustomEvent("llamarada:language"));
}

export function t(key, params = {}) {
  const template = MESSAGES[current][key] ?? MESSAGES.en[key] ?? key;
  return template.replace(/\{(\w+)\}/g, (match, name) => (name in params ? String(params[name]) : match));
}

/** The string for `count` things: `key_one` or `key_other` by the language's plural rules. */
export function plural(key, count, params = {}) {
  const form = new Intl.PluralRules(current).select(count);
  const name = MESSAGES[current][`${key}_${form}`] ? `${key}_${form}` : `${key}_other`;
  return t(name, { count: formatNumber(count, 0), ...params });
}

/** Fill the marked elements under `root` with the current language's strings. */
export function translate(root) {
  for (const element of root.querySelectorAll("[data-i18n]")) element.textContent = t(element.dataset.i18n);
  for (const element of root.querySelectorAll("[data-i18n-placeholder]")) {
    element.placeholder = t(element.dataset.i18nPlaceholder);
  }
  for (const element of root.querySelectorAll("[data-i18n-aria-label]")) {
    element.setAttribute("aria-label", t(element.dataset.i18nAriaLabel));
  }
}

/** A number in the current language's format. */
export function formatNumber(value, digits = 1) {
  return new Intl.NumberFormat(current, { maximumFractionDigits: digits }).format(value);
}

/** A duration in milliseconds, as "850 ms" or "1.2 s". */
export function formatDuration(ms) {
  return ms < 1000 ? `${formatNumber(ms, 0)} ms` : `${formatNumber(ms / 1000, 1)} s`;
}
