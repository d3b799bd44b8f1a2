'use strict';
// chatwire's Node.js client: see README.md ("Node.js") in the repository.
const grpc = require('@grpc/grpc-js');
const { ChatwireClient, ChatStream, loadService, userText, systemText } = require('./client');
const { ChatwireError, decodeStatusDetails, decodeStatusBytes, codeName } = require('./errors');
const { valueToJs, structToObject, toValue, toStruct, parseArgumentsJson, toolCallArguments } = require('./struct');
const { LOADER_OPTIONS } = require('./proto');

module.exports = {
  ChatwireClient,
  ChatStream,
  ChatwireError,
  loadService,
  userText,
  systemText,
  decodeStatusDetails,
  decodeStatusBytes,
  codeName,
  valueToJs,
  structToObject,
  toValue,
  toStruct,
  parseArgumentsJson,
  toolCallArguments,
  LOADER_OPTIONS,
  status: grpc.status,
  credentials: grpc.credentials,
};
