// Runs the third-party offline-directline server (npm) on 127.0.0.1:<port>, in front of the bot.
// Usage: node offline_directline.cjs <port> <bot messages URL>
const express = require('express');
const directline = require('offline-directline');

const [port, botUrl] = process.argv.slice(2);
directline.initializeRoutes(express(), Number(port), botUrl);
