/*
 * webui.c - the chat page served at GET /: one HTML file with its CSS and
 * JavaScript inline, no external assets. It keeps the conversation in the
 * page, sends it to /v1/chat/completions with stream: true, and renders
 * the SSE deltas as they arrive. An API key typed into the page is kept in
 * the browser's localStorage and sent as a Bearer token.
 *
 * Hooks for tests and scripts: #prompt, #send, #messages; each answer is a
 * .msg.assistant element whose data-state becomes "done" (or "error") when
 * its stream ends; /?q=TEXT sends TEXT once the page has loaded.
 */
#include "server-impl.h"

const char srv_webui_html[] =
    "<!DOCTYPE html>\n"
    "<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>ROCmForge chat</title>\n"
    "<style>\n"
    "*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,sans-serif;background:#f4f4f6;color:#222;"
    "display:flex;flex-direction:column;height:100vh}\n"
    "header{padding:8px 14px;background:#263238;color:#fff;display:flex;gap:12px;align-items:center;flex-wrap:wrap}\n"
    "header b{font-size:16px}header label{font-size:13px;opacity:.85}header input{width:70px}\n"
    "#key{width:160px}#messages{flex:1;overflow-y:auto;padding:14px}\n"
    ".msg{max-width:760px;margin:0 auto 10px;padding:9px 12px;border-radius:8px;white-space:pre-wrap;word-wrap:break-word}\n"
    ".user{background:#dbe9ff}.assistant{background:#fff;border:1px solid #ddd}.assistant[data-state=error]{border-color:#c62828;color:#c62828}\n"
    "form{display:flex;gap:8px;padding:10px 14px;background:#fff;border-top:1px solid #ddd}\n"
    "textarea{flex:1;resize:none;height:56px;font:inherit;padding:6px}button{padding:0 18px;font:inherit}\n"
    "#stats{font-size:12px;opacity:.8}\n"
    "</style></head><body>\n"
    "<header><b>ROCmForge</b><span id=\"model\"></span>\n"
    "<label>temperature <input id=\"temp\" type=\"number\" step=\"0.1\" min=\"0\" max=\"2\" value=\"0.7\"></label>\n"
    "<label>max tokens <input id=\"maxtok\" type=\"number\" min=\"1\" value=\"256\"></label>\n"
    "<label>API key <input id=\"key\" type=\"password\" autocomplete=\"off\"></label>\n"
    "<button id=\"clear\" type=\"button\">new chat</button><span id=\"stats\"></span></header>\n"
    "<div id=\"messages\"></div>\n"
    "<form id=\"form\"><textarea id=\"prompt\" placeholder=\"Ask something (Enter sends, Shift+Enter breaks the line)\"></textarea>"
    "<button id=\"send\" type=\"submit\">Send</button></form>\n"
    "<script>\n"
    "'use strict';\n"
    "const $=s=>document.querySelector(s);\n"
    "const history=[];let busy=false;\n"
    "$('#key').value=localStorage.getItem('rf_key')||'';\n"
    "$('#key').onchange=()=>localStorage.setItem('rf_key',$('#key').value);\n"
    "function headers(){const h={'Content-Type':'application/json'};const k=$('#key').value;"
    "if(k)h['Authorization']='Bearer '+k;return h}\n"
    "fetch('/v1/models',{headers:headers()}).then(r=>r.json()).then(j=>{if(j.data)$('#model').textContent=j.data[0].id}).catch(()=>{});\n"
    "function add(role,text){const d=document.createElement('div');d.className='msg '+role;d.textContent=text;"
    "$('#messages').appendChild(d);$('#messages').scrollTop=1e9;return d}\n"
    "$('#clear').onclick=()=>{if(busy)return;history.length=0;$('#messages').textContent=''};\n"
    "$('#prompt').addEventListener('keydown',e=>{if(e.key==='Enter'&&!e.shiftKey){e.preventDefault();send()}});\n"
    "$('#form').onsubmit=e=>{e.preventDefault();send()};\n"
    "async function send(){\n"
    " const q=$('#prompt').value.trim();if(!q||busy)return;\n"
    " busy=true;$('#send').disabled=true;$('#prompt').value='';\n"
    " history.push({role:'user',content:q});add('user',q);\n"
    " const out=add('assistant','');out.dataset.state='streaming';\n"
    " const t0=performance.now();let n=0,first=0,text='';\n"
    " try{\n"
    "  const r=await fetch('/v1/chat/completions',{method:'POST',headers:headers(),body:JSON.stringify({\n"
    "   messages:history,stream:true,temperature:parseFloat($('#temp').value),max_tokens:parseInt($('#maxtok').value)})});\n"
    "  if(!r.ok){let m=r.status+' '+r.statusText;try{m=(await r.json()).error.message}catch(e){}throw new Error(m)}\n"
    "  const rd=r.body.getReader(),dec=new TextDecoder();let buf='';\n"
    "  for(;;){const {value,done}=await rd.read();if(done)break;buf+=dec.decode(value,{stream:true});\n"
    "   let i;while((i=buf.indexOf('\\n\\n'))>=0){const ev=buf.slice(0,i);buf=buf.slice(i+2);\n"
    "    for(const line of ev.split('\\n')){if(!line.startsWith('data: '))continue;const d=line.slice(6);\n"
    "     if(d==='[DONE]')continue;const j=JSON.parse(d);if(j.error)throw new Error(j.error.message);\n"
    "     const c=j.choices&&j.choices[0];if(c&&c.delta&&c.delta.content){if(!first)first=performance.now();"
    "n++;text+=c.delta.content;out.textContent=text;$('#messages').scrollTop=1e9}}}}\n"
    "  history.push({role:'assistant',content:text});out.dataset.state='done';\n"
    "  const s=(performance.now()-(first||t0))/1000;$('#stats').textContent=n+' chunks, first after '+"
    "((first-t0)/1000).toFixed(2)+' s, '+(n>1?((n-1)/s).toFixed(1):'-')+' chunks/s';\n"
    " }catch(e){out.textContent=(text?text+'\\n':'')+'error: '+e.message;out.dataset.state='error';history.pop()}\n"
    " busy=false;$('#send').disabled=false;$('#prompt').focus();\n"
    "}\n"
    "const q=new URLSearchParams(location.search).get('q');if(q){$('#prompt').value=q;send()}\n"
    "</script></body></html>\n";

const size_t srv_webui_html_len = sizeof srv_webui_html - 1;
